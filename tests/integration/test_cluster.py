"""A real 3-node cluster on loopback (`tbhns opensearch start --nodes 3`'s `LocalCluster`, HTTP 9290-9292):
an index with 2 shards and 1 replica is written and searched in every mode, one node is stopped, and every
product is still found. Ingest and search run unchanged against it."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import pytest

from tbhns_opensearch.cluster import LocalCluster, make_client
from tbhns_opensearch.config import OpenSearchConfig
from tbhns_opensearch.index.ingest import IngestConfig, ingest_products
from tbhns_opensearch.index.templates import IndexConfig
from tbhns_opensearch.query.service import SearchClient
from tests.conftest import fixture_products

pytestmark = pytest.mark.integration
PRODUCTS = 60


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    cluster = LocalCluster(3, http_port=9290, heap="512m")
    for node in cluster.nodes:
        shutil.rmtree(node.config.node_dir, ignore_errors=True)
        node.config.node_dir.mkdir(parents=True)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        for node in cluster.nodes:
            shutil.rmtree(node.config.node_dir, ignore_errors=True)


def test_a_replicated_index_survives_the_loss_of_a_node(cluster: LocalCluster, encoder) -> None:  # type: ignore[no-untyped-def]
    config = OpenSearchConfig(url=cluster.url)
    client = make_client(config)
    assert client.cluster.health()["number_of_nodes"] == 3
    products = fixture_products("toys_products.jsonl")[:PRODUCTS]
    ingest_products(client, products, encoder, IndexConfig(alias="multi", shards=2, replicas=1), IngestConfig(progress=False))
    client.cluster.health(index="multi", wait_for_status="green")  # waits up to 30 s
    shards = client.cat.shards(index="multi", format="json")
    assert len(shards) == 4 and len({s["node"] for s in shards}) >= 2  # primaries and replicas spread out
    search = SearchClient(config, "multi", encoder)
    title = products[0].title
    for mode in ("bm25", "semantic", "hybrid"):
        assert search.search(title, mode=mode, k=5).hits, mode

    cluster.nodes[2].stop()
    deadline = time.monotonic() + 60
    while client.cluster.health()["number_of_nodes"] != 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert client.cluster.health()["number_of_nodes"] == 2
    assert client.cluster.health(index="multi")["status"] in ("green", "yellow")  # no primary lost
    assert client.count(index="multi")["count"] == PRODUCTS  # every product still served
    for mode in ("bm25", "semantic", "hybrid"):
        hits = search.search(title, mode=mode, k=5).hits
        assert products[0].id in [hit.id for hit in hits], mode
