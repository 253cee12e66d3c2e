"""The encoder inside OpenSearch: an ML Commons remote model whose connector calls our `/embed` endpoint.

Why a connector and not the ONNX model itself: ML Commons 2.19.1 runs a local ONNX model through DJL's
OnnxRuntime engine, whose NDArray manager needs PyTorch as its "alternative engine" even for `expandDims`;
DJL then downloads libtorch from publish.djl.ai at deploy time (ML Commons pins PYTORCH_VERSION 1.13.1), and
the matching `ai.djl.pytorch:pytorch-jni` builds are not on Maven Central. On a cluster without internet access
the deploy fails with `publish.djl.ai`. A remote model works everywhere: the cluster posts
`{"input": [texts]}` to `tbhns serve`'s `/embed` (bearer token kept encrypted in the connector) and reads the
vectors back, so the `neural` query and a `text_embedding` ingest pipeline use exactly the client's encoder.

`deploy_remote_encoder` trusts the endpoint (appending one exact-URL pattern to
`plugins.ml_commons.trusted_connector_endpoints_regex`, and allowing private addresses only for a loopback or
private endpoint), registers connector, model group and model, deploys it and returns the ids.
`check_parity` compares the cluster's vectors with the client's; `ensure_embedding_pipeline` creates the
ingest pipeline that fills `embedding` from `embedding_text`.

Example:
    >>> connector_body("http://127.0.0.1:8011", "t0ken", "tbhns-minilm")["actions"][0]["url"]
    'http://127.0.0.1:8011/embed'
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from opensearchpy import OpenSearch
from opensearchpy.exceptions import TransportError

from tbhns_opensearch.encoder import Encoder, unit_rows
from tbhns_opensearch.errors import DeployError

ML = "/_plugins/_ml"
EMBED_PATH = "/embed"
TEXT_FIELD = "embedding_text"  # what a pipeline-ingested document carries instead of its vector
TRUSTED = "plugins.ml_commons.trusted_connector_endpoints_regex"
PRIVATE_IP = "plugins.ml_commons.connector.private_ip_enabled"
MIN_COSINE = 0.9999


@dataclass(frozen=True)
class RemoteModel:
    """A deployed remote model: its id (for `neural` queries and pipelines), connector and group."""

    model_id: str
    connector_id: str
    model_group_id: str
    endpoint: str


def connector_body(endpoint: str, token: str, name: str) -> dict[str, Any]:
    """The ML Commons connector that posts texts to `endpoint`/embed with the bearer `token`."""
    return {
        "name": f"{name}-connector",
        "description": f"tbhns encoder at {endpoint}{EMBED_PATH}",
        "version": "1",
        "protocol": "http",
        "parameters": {},
        "credential": {"token": token},  # ML Commons stores it encrypted and never returns it
        "actions": [
            {
                "action_type": "predict",
                "method": "POST",
                "url": f"{endpoint}{EMBED_PATH}",
                "headers": {"content-type": "application/json", "Authorization": "Bearer ${credential.token}"},
                "request_body": '{ "input": ${parameters.input} }',
                "pre_process_function": "connector.pre_process.default.embedding",
                "post_process_function": "connector.post_process.default.embedding",
            }
        ],
    }


def deploy_remote_encoder(
    client: OpenSearch, endpoint: str, token: str, name: str, timeout_s: float = 60.0
) -> RemoteModel:
    """Trust `endpoint`, register and deploy a remote model named `name` that embeds through it.

    Args:
        client: The cluster (ML Commons installed: `tbhns opensearch start --ml` here).
        endpoint: Base URL of `tbhns serve` as the cluster reaches it, e.g. http://127.0.0.1:8011.
        token: The serve process's TBHNS_EMBED_TOKEN.
        name: Model (and model group) name.
        timeout_s: How long to wait for the model to be deployed.
    """
    endpoint = endpoint.rstrip("/")
    _trust(client, endpoint)
    connector_id = _call(client, "POST", f"{ML}/connectors/_create", connector_body(endpoint, token, name))[
        "connector_id"
    ]
    group_id = _model_group(client, name)
    registered = _call(
        client,
        "POST",
        f"{ML}/models/_register?deploy=true",
        {
            "name": name,
            "function_name": "remote",
            "model_group_id": group_id,
            "connector_id": connector_id,
            "description": f"tbhns encoder served at {endpoint}{EMBED_PATH}",
        },
    )
    model_id = registered["model_id"]
    deadline = time.monotonic() + timeout_s
    while (state := _call(client, "GET", f"{ML}/models/{model_id}").get("model_state")) != "DEPLOYED":
        if state in ("DEPLOY_FAILED", "PARTIALLY_DEPLOYED") or time.monotonic() > deadline:
            raise DeployError(f"model {model_id} is {state} after {timeout_s:.0f}s; the node log says why")
        time.sleep(0.5)
    return RemoteModel(model_id, connector_id, group_id, endpoint)


def undeploy(client: OpenSearch, model_id: str) -> None:
    """Stop serving `model_id` (it stays registered, so its failure can be inspected)."""
    _call(client, "POST", f"{ML}/models/{model_id}/_undeploy")


def embed_in_cluster(client: OpenSearch, model_id: str, texts: Sequence[str]) -> np.ndarray:
    """The vectors the cluster makes for `texts` with `model_id` (the `text_embedding` predict API), (n, dim)."""
    answer = _call(
        client,
        "POST",
        f"{ML}/_predict/text_embedding/{model_id}",
        {"text_docs": list(texts), "target_response": ["sentence_embedding"]},
    )
    outputs = [tensor for result in answer["inference_results"] for tensor in result["output"]]
    return np.asarray([tensor["data"] for tensor in outputs], dtype=np.float32)


def check_parity(
    client: OpenSearch, model_id: str, encoder: Encoder, texts: Sequence[str], min_cosine: float = MIN_COSINE
) -> float:
    """The lowest cosine between the cluster's and the client's vector of each text; a `DeployError` below
    `min_cosine` (the deployed model would rank differently from the client)."""
    if not texts:
        raise DeployError("parity needs at least one text")
    served, local = embed_in_cluster(client, model_id, texts), encoder.encode(list(texts))
    if served.shape != local.shape:
        raise DeployError(f"the cluster returned vectors of shape {served.shape}, the client {local.shape}")
    cosines = np.sum(unit_rows(served) * unit_rows(local), axis=1)
    worst = float(cosines.min())
    if worst < min_cosine:
        text = texts[int(cosines.argmin())]
        raise DeployError(
            f"cluster and client vectors disagree: cosine {worst:.6f} < {min_cosine} for {text[:80]!r}; "
            "the endpoint serves another encoder than the one given"
        )
    return worst


def ensure_embedding_pipeline(client: OpenSearch, name: str, model_id: str) -> None:
    """Create (or replace) ingest pipeline `name`: `embedding` from `embedding_text` with `model_id`. The
    template maps `embedding_text` neither indexed nor kept in `_source`, so documents hold no copy of it."""
    _call(
        client,
        "PUT",
        f"/_ingest/pipeline/{name}",
        {
            "description": f"tbhns: product vectors from model {model_id}",
            "processors": [
                {"text_embedding": {"model_id": model_id, "field_map": {TEXT_FIELD: "embedding"}, "batch_size": 64}}
            ],
        },
    )


def set_default_model(client: OpenSearch, alias: str, model_id: str) -> str:
    """Make `model_id` the default of `neural` queries on `alias` (a `neural_query_enricher` search pipeline set
    as the index default), so any OpenSearch client can omit it; return the pipeline name."""
    name = f"{alias}-neural-default"
    _call(
        client,
        "PUT",
        f"/_search/pipeline/{name}",
        {"request_processors": [{"neural_query_enricher": {"default_model_id": model_id}}]},
    )
    _call(client, "PUT", f"/{alias}/_settings", {"index.search.default_pipeline": name})
    return name


def _trust(client: OpenSearch, endpoint: str) -> None:
    """Add the endpoint's exact URL to the trusted connector patterns; allow private addresses only when it
    is one (ML Commons refuses loopback and private endpoints by default)."""
    settings = _call(client, "GET", "/_cluster/settings?include_defaults=true&flat_settings=true")
    current = next(
        (
            settings[scope][TRUSTED]
            for scope in ("persistent", "transient", "defaults")
            if TRUSTED in settings.get(scope, {})
        ),
        [],
    )
    pattern = f"^{re.escape(endpoint + EMBED_PATH)}$"
    persistent: dict[str, Any] = {} if pattern in current else {TRUSTED: [*current, pattern]}
    host = urlsplit(endpoint).hostname or ""
    if _is_private(host):
        persistent[PRIVATE_IP] = True
    if persistent:
        _call(client, "PUT", "/_cluster/settings", {"persistent": persistent})


def _is_private(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_private
    except ValueError:
        return False


def _model_group(client: OpenSearch, name: str) -> str:
    """The id of model group `name`, registered when it does not exist yet."""
    found = _call(client, "POST", f"{ML}/model_groups/_search", {"query": {"term": {"name.keyword": name}}, "size": 1})
    hits = found.get("hits", {}).get("hits", [])
    if hits:
        return str(hits[0]["_id"])
    return str(
        _call(client, "POST", f"{ML}/model_groups/_register", {"name": name, "description": "tbhns encoders"})[
            "model_group_id"
        ]
    )


def _call(client: OpenSearch, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """One ML Commons / cluster API call; a refusal becomes a one-line `DeployError` with the cluster's reason."""
    try:
        return client.transport.perform_request(method, path, body=body)
    except TransportError as exc:
        error = exc.info.get("error") if isinstance(exc.info, dict) else None
        reason = error.get("reason", exc.error) if isinstance(error, dict) else (error or exc.error)
        missing = path.startswith(ML) and "no handler found" in str(reason).lower()
        hint = "; the cluster has no ML Commons plugin (here: `tbhns opensearch start --ml`)" if missing else ""
        raise DeployError(f"{method} {path.split('?')[0]} failed ({exc.status_code}): {reason}{hint}") from exc
