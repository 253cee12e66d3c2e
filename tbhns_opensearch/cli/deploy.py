"""`tbhns deploy`: the encoder inside OpenSearch, as an ML Commons remote model that calls `tbhns serve`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from tbhns_opensearch.cli.app import (
    BACKEND_OPTION,
    EMBED_TOKEN_ENV,
    catalog_products,
    catalog_source,
    cli,
    cluster_for,
    port_option,
)

PARITY_PRODUCTS = 100


@cli.command("deploy")
@click.argument("encoder")
@click.option(
    "--endpoint",
    default="http://127.0.0.1:8000",
    show_default=True,
    help="`tbhns serve` (started with the same ENCODER and TBHNS_EMBED_TOKEN) as the cluster reaches it",
)
@click.option("--name", help="model and model group name [default: tbhns-<encoder folder>]")
@BACKEND_OPTION
@catalog_source
@click.option("--pipeline", help="also create this ingest pipeline (`tbhns ingest --pipeline NAME`)")
@click.option("--alias", help="make the model the default of `neural` queries on this product alias")
@port_option(" (when OPENSEARCH_URL is unset)")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def deploy(
    encoder: str,
    endpoint: str,
    name: str | None,
    backend: str,
    catalog: Path | None,
    dataset: str | None,
    data_dir: Path | None,
    pipeline: str | None,
    alias: str | None,
    port: int,
    as_json: bool,
) -> None:
    """Register and deploy ENCODER in the cluster: a remote model whose connector posts texts to ENDPOINT/embed
    with the bearer token in TBHNS_EMBED_TOKEN (stored encrypted by ML Commons). The cluster's vectors for the
    first 100 products of CATALOG / --dataset (or built-in sample texts) must match the client's (cosine >=
    0.9999), else the model is undeployed and the command fails. Then `tbhns search --model-id ID` and
    `tbhns ingest --pipeline NAME` let the cluster embed queries and products.

    Example: TBHNS_EMBED_TOKEN=s3cret tbhns serve --encoder runs/encoders/minilm &
    tbhns deploy runs/encoders/minilm --pipeline tbhns-embed
    """
    from tbhns_opensearch.cluster import make_client
    from tbhns_opensearch.encoder import Encoder
    from tbhns_opensearch.encoder.export import SAMPLE_TEXTS
    from tbhns_opensearch.errors import DeployError
    from tbhns_opensearch.index.remote_model import (
        check_parity,
        deploy_remote_encoder,
        ensure_embedding_pipeline,
        set_default_model,
        undeploy,
    )

    token = os.environ.get(EMBED_TOKEN_ENV)
    if not token:
        raise click.UsageError(f"set {EMBED_TOKEN_ENV} to the token `tbhns serve` was started with")
    texts = list(SAMPLE_TEXTS)
    if catalog or dataset:
        texts = [
            product.text_for_embedding() for product in catalog_products(catalog, dataset, data_dir)[:PARITY_PRODUCTS]
        ]
    client = make_client(cluster_for(port, start=False))
    model = deploy_remote_encoder(client, endpoint, token, name or f"tbhns-{Path(encoder).name.lower()}")
    try:
        cosine = check_parity(client, model.model_id, Encoder(encoder, backend=backend), texts)
    except DeployError:
        undeploy(client, model.model_id)
        raise
    result = {
        "model_id": model.model_id,
        "connector_id": model.connector_id,
        "model_group_id": model.model_group_id,
        "endpoint": model.endpoint,
        "parity_texts": len(texts),
        "min_cosine": round(cosine, 6),
    }
    if pipeline:
        ensure_embedding_pipeline(client, pipeline, model.model_id)
        result["pipeline"] = pipeline
    if alias:
        result["search_pipeline"] = set_default_model(client, alias, model.model_id)
    click.echo(json.dumps(result, indent=2) if as_json else " ".join(f"{k}={v}" for k, v in result.items()))
