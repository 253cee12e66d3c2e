"""`tbhns ingest --encode-workers 2` against the real node: the documents and vectors of one process, written
in catalog order, and no worker left after the command."""

from __future__ import annotations

import json
import multiprocessing
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from tbhns_opensearch.cli import cli
from tbhns_opensearch.index.ingest import FINGERPRINT
from tbhns_opensearch.index.templates import IndexConfig
from tbhns_opensearch.users.store import fetch_product_vectors
from tests.helpers import FIXTURES, fixture_products

pytestmark = pytest.mark.integration
CATALOG = FIXTURES / "toys_products.jsonl"  # 1,500 Amazon UK toys
TOLERANCE = 1e-6  # max abs difference per coordinate between the two runs' unit vectors


@pytest.fixture
def second_alias(os_client) -> Iterator[str]:  # type: ignore[no-untyped-def]
    config = IndexConfig(alias=f"test-{uuid.uuid4().hex[:12]}")
    yield config.alias
    os_client.indices.delete(index=f"{config.alias}-*", ignore_unavailable=True)
    os_client.indices.delete_index_template(name=config.template_name, ignore=[404])


def _ingest(alias: str, workers: int) -> dict[str, Any]:
    arguments = ["ingest", str(CATALOG), "--alias", alias, "--encode-workers", str(workers), "--json"]
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout[result.stdout.index("{") :]))


def _documents_in_write_order(os_client, alias: str) -> list[tuple[str, dict[str, Any]]]:  # type: ignore[no-untyped-def]
    """(id, _source) of every document, by sequence number: the order the one shard wrote them in."""
    body = {"size": 2000, "seq_no_primary_term": True, "query": {"match_all": {}}, "sort": [{"_seq_no": "asc"}]}
    hits = os_client.search(index=alias, body=body)["hits"]["hits"]
    return [(hit["_id"], hit["_source"]) for hit in hits]


def _fingerprint(os_client, alias: str) -> str:  # type: ignore[no-untyped-def]
    mapping = os_client.indices.get_mapping(index=alias)
    return str(next(iter(mapping.values()))["mappings"]["_meta"][FINGERPRINT])


def test_two_encode_workers_write_what_one_writes_in_catalog_order(
    os_client, opensearch_config, index_config, second_alias: str, monkeypatch
) -> None:
    monkeypatch.setenv("OPENSEARCH_URL", opensearch_config.url)
    products = fixture_products("toys_products.jsonl")
    before = set(multiprocessing.active_children())
    one = _ingest(index_config.alias, 1)
    two = _ingest(second_alias, 2)
    assert set(multiprocessing.active_children()) == before  # the command stopped its workers
    assert one["indexed"] == two["indexed"] == len(products) == 1500 and one["rejected"] == two["rejected"] == 0

    written_one = _documents_in_write_order(os_client, index_config.alias)
    written_two = _documents_in_write_order(os_client, second_alias)
    assert [doc_id for doc_id, _ in written_two] == [p.id for p in products]  # the writer was fed in catalog order
    assert written_two == written_one
    assert _fingerprint(os_client, second_alias) == _fingerprint(os_client, index_config.alias)

    ids = [p.id for p in products]
    stored_one = fetch_product_vectors(os_client, index_config.alias, ids)
    stored_two = fetch_product_vectors(os_client, second_alias, ids)
    vectors_one = np.stack([stored_one[i] for i in ids])  # (1500, dim)
    vectors_two = np.stack([stored_two[i] for i in ids])  # (1500, dim)
    np.testing.assert_allclose(vectors_two, vectors_one, rtol=0, atol=TOLERANCE)
