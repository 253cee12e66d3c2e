"""A real 3-node cluster on loopback (`tbhns opensearch start --nodes 3`'s `LocalCluster`, HTTP 9290-9292):
an ingest into 2 shards with 1 replica has one node `kill -9`ed halfway through; with the node down every
search mode keeps answering (failed searches counted and printed; the target is 0), and a rerun of the ingest
leaves every product exactly once. Ingest and search run unchanged against it."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator

import pytest

from tbhns_opensearch.catalog import Product
from tbhns_opensearch.cluster import LocalCluster, make_client
from tbhns_opensearch.config import OpenSearchConfig
from tbhns_opensearch.errors import IngestError, TbhnsError
from tbhns_opensearch.index.ingest import IngestConfig, IngestSummary, ingest_products
from tbhns_opensearch.index.templates import IndexConfig
from tbhns_opensearch.query import SearchClient
from tests.helpers import fixture_products

pytestmark = pytest.mark.integration
PRODUCTS = 600


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


def test_a_node_killed_mid_ingest_loses_nothing_and_searches_keep_answering(cluster: LocalCluster, encoder) -> None:  # type: ignore[no-untyped-def]
    config = OpenSearchConfig(url=cluster.url)
    client = make_client(config)
    assert client.cluster.health()["number_of_nodes"] == 3
    products = fixture_products("toys_products.jsonl")[:PRODUCTS]
    index = IndexConfig(alias="multi", shards=2, replicas=1)
    killed = cluster.nodes[2]

    def kill_midway() -> Iterator[Product]:  # kill -9 the third node once half the catalog was read
        for position, product in enumerate(products):
            if position == PRODUCTS // 2:
                os.kill(killed.pid(), signal.SIGKILL)
            yield product

    first = IngestSummary(index="not run")
    try:
        first = ingest_products(
            client, kill_midway(), encoder, index, IngestConfig(encode_chunk=50, bulk_chunk=50, progress=False)
        )
    except IngestError as exc:  # the bulk that met the dead node may fail; the rerun below must repair it
        print(f"first ingest: {exc}")
    wait_for_nodes(client, 2)
    assert client.cluster.health(index="multi")["status"] in ("green", "yellow")  # no primary lost

    search = SearchClient(config, "multi", encoder)
    queries = [product.title for product in products[:: PRODUCTS // 20]]
    failed = 0
    for query in queries:  # while the node is down: every mode must answer
        for mode in ("bm25", "semantic", "hybrid"):
            try:
                failed += not search.search(query, mode=mode, k=5).hits
            except TbhnsError as exc:
                failed += 1
                print(f"{mode} {query!r}: {exc}")
    print(
        f"indexed before the rerun: {first.indexed}; failed searches with a node down: {failed} of {3 * len(queries)}"
    )
    assert failed == 0

    rerun = ingest_products(client, products, encoder, index, IngestConfig(progress=False))
    assert rerun.indexed == PRODUCTS and not rerun.failures
    client.indices.refresh(index="multi")
    assert client.count(index="multi")["count"] == PRODUCTS  # every product exactly once (ids are product ids)
    ids = {
        hit["_id"] for hit in client.search(index="multi", body={"size": PRODUCTS, "_source": False})["hits"]["hits"]
    }
    assert ids == {product.id for product in products}
    for mode in ("bm25", "semantic", "hybrid"):
        hits = search.search(products[0].title, mode=mode, k=5).hits
        assert products[0].id in [hit.id for hit in hits], mode


def wait_for_nodes(client, count: int, timeout_s: float = 90.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while client.cluster.health()["number_of_nodes"] != count and time.monotonic() < deadline:
        time.sleep(0.5)
    assert client.cluster.health()["number_of_nodes"] == count
