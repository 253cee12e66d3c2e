"""The encoder inside OpenSearch (`tbhns deploy`) on a node of its own with ML Commons (port 9275).

`tbhns serve`'s app runs in a thread with a bearer token; the cluster gets a remote model whose connector calls
its `/embed`. The test checks what a user relies on: the deploy passes the parity gate on 100 fixture products;
products ingested through the `text_embedding` pipeline hold the client's vectors (cosine >= 0.9999 for
every product, scored exactly); `neural` and hybrid-with-`neural` return the client-side top 10; a
wrong token fails the deploy in one line that never shows the token.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator

import pytest

from tbhns_opensearch.api import ServeSettings, create_app
from tbhns_opensearch.api.background import running_app
from tbhns_opensearch.cluster import LocalNode, NodeConfig, make_client
from tbhns_opensearch.cluster.node import default_cache_dir
from tbhns_opensearch.config import OpenSearchConfig
from tbhns_opensearch.encoder import Encoder
from tbhns_opensearch.errors import DeployError
from tbhns_opensearch.index.ingest import IngestConfig, ingest_products
from tbhns_opensearch.index.remote_model import (
    RemoteModel,
    check_parity,
    deploy_remote_encoder,
    embed_in_cluster,
    ensure_embedding_pipeline,
)
from tbhns_opensearch.index.templates import IndexConfig
from tbhns_opensearch.query import SearchClient
from tests.helpers import fixture_products

pytestmark = pytest.mark.integration
PORT = 9275
TOKEN = f"tok-{uuid.uuid4().hex}"
QUERIES = ("remote control car", "wooden train set", "chess board", "slot car track", "die-cast fire engine")


@pytest.fixture(scope="module")
def ml_node() -> Iterator[OpenSearchConfig]:
    data_dir = default_cache_dir() / "test-node" / f"ml-{PORT}"
    shutil.rmtree(data_dir, ignore_errors=True)
    node = LocalNode(NodeConfig(http_port=PORT, data_dir=data_dir, ml=True, heap="1g"))
    node.start()
    try:
        yield OpenSearchConfig(url=node.url)
    finally:
        node.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def endpoint(ml_node: OpenSearchConfig, encoder: Encoder) -> Iterator[str]:
    app = create_app(
        ServeSettings(ml_node, warm=False, embed_token=TOKEN), search_client=SearchClient(ml_node, encoder=encoder)
    )
    with running_app(app) as url:
        yield url


@pytest.fixture(scope="module")
def deployed(ml_node: OpenSearchConfig, endpoint: str) -> RemoteModel:
    return deploy_remote_encoder(make_client(ml_node), endpoint, TOKEN, "tbhns-test-minilm")


def test_the_deployed_model_embeds_like_the_client_and_a_wrong_token_fails_in_one_line(
    ml_node: OpenSearchConfig, endpoint: str, deployed: RemoteModel, encoder: Encoder
) -> None:
    client = make_client(ml_node)
    texts = [product.text_for_embedding() for product in fixture_products("toys_products.jsonl")[:100]]
    assert check_parity(client, deployed.model_id, encoder, texts) >= 0.9999
    assert embed_in_cluster(client, deployed.model_id, texts[:3]).shape == (3, encoder.dimension)

    wrong = deploy_remote_encoder(client, endpoint, "not-the-token", "tbhns-test-wrong-token")
    with pytest.raises(DeployError) as failed:
        check_parity(client, wrong.model_id, encoder, texts[:2])
    message = str(failed.value)
    assert "401" in message and "\n" not in message and TOKEN not in message and "not-the-token" not in message


def test_pipeline_ingest_and_neural_search_match_the_client_side_path(
    ml_node: OpenSearchConfig, deployed: RemoteModel, encoder: Encoder
) -> None:
    client = make_client(ml_node)
    products = fixture_products("toys_products.jsonl")[:200]
    pipeline = f"test-embed-{uuid.uuid4().hex[:8]}"
    ensure_embedding_pipeline(client, pipeline, deployed.model_id)
    index = IndexConfig(alias=f"test-neural-{uuid.uuid4().hex[:8]}")
    try:
        summary = ingest_products(client, products, encoder, index, IngestConfig(progress=False, pipeline=pipeline))
        assert summary.indexed == len(products) and not summary.failures

        vectors = encoder.encode([product.text_for_embedding() for product in products])
        lines = [
            line
            for product, vector in zip(products, vectors)
            for line in (
                {"index": index.alias},
                {
                    "size": 1,
                    "_source": False,
                    "query": {
                        "script_score": {
                            "query": {"ids": {"values": [product.id]}},
                            "script": {
                                "source": "knn_score",
                                "lang": "knn",
                                "params": {
                                    "field": "embedding",
                                    "query_value": vector.tolist(),
                                    "space_type": "cosinesimil",
                                },
                            },
                        }
                    },
                },
            )
        ]
        responses = client.msearch(body=lines)["responses"]
        cosines = [2 - 1 / r["hits"]["hits"][0]["_score"] for r in responses]  # knn_score cosinesimil: 1 / (2 - cos)
        assert len(cosines) == len(products) and min(cosines) >= 0.9999

        server_side = SearchClient(ml_node, index.alias, encoder, model_id=deployed.model_id)
        client_side = SearchClient(ml_node, index.alias, encoder)
        for query in QUERIES:
            for mode in ("semantic", "hybrid"):
                neural = server_side.search(query, mode=mode, k=10)
                local = client_side.search(query, mode=mode, k=10)
                assert [hit.id for hit in neural.hits] == [hit.id for hit in local.hits], (query, mode)
                assert len(neural.hits) == 10
    finally:
        client.indices.delete(index=f"{index.alias}-*", ignore_unavailable=True)
        client.indices.delete_index_template(name=index.template_name, ignore=[404])
