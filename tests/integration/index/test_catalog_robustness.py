"""Catalog input robustness end to end on the real node: list attributes filter by each value, nested attributes
by their dotted names, a Parquet decimal price is a number the price filter sees, and a record OpenSearch could not
store (a lone surrogate) is a reject while its neighbours are indexed."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tbhns_opensearch.catalog import ColumnMapping, read_catalog
from tbhns_opensearch.index.ingest import IngestConfig, ingest_products
from tbhns_opensearch.query.builders import build_bm25, parse_filters

pytestmark = pytest.mark.integration
QUIET = IngestConfig(progress=False)
PRODUCTS = [
    {"id": "m1", "title": "Striped mug", "attributes": {"colors": ["red", "blue"], "size": {"w": 3, "unit": "in"}}},
    {"id": "m2", "title": "Plain mug", "attributes": {"colors": ["blue"], "size": {"w": 4}}},
    {"id": "m3", "title": "Spotted mug", "attributes": {"colors": "red"}},
]


def _ids(os_client, alias: str, *filters: str) -> set[str]:  # type: ignore[no-untyped-def]
    body = build_bm25("mug", 10, parse_filters(list(filters)))
    return {hit["_id"] for hit in os_client.search(index=alias, body=body)["hits"]["hits"]}


def test_list_and_nested_attributes_filter_by_each_value(os_client, encoder, index_config, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.jsonl"
    lines = [json.dumps(product) for product in PRODUCTS] + [r'{"id": "m4", "title": "Smile mug \ud83d"}']
    catalog.write_text("\n".join(lines) + "\n", encoding="utf-8")
    stream = read_catalog(catalog)
    summary = ingest_products(os_client, stream, encoder, index_config, QUIET)
    assert summary.indexed == 3 and summary.failures == []
    assert [(reject.line, reject.field) for reject in stream.rejects] == [(4, "title")]
    assert _ids(os_client, index_config.alias, "attr=colors=red") == {"m1", "m3"}
    assert _ids(os_client, index_config.alias, "attr=colors=blue") == {"m1", "m2"}
    assert _ids(os_client, index_config.alias, "attr=colors=red", "attr=colors=blue") == {"m1"}
    assert _ids(os_client, index_config.alias, "attr=colors=['red', 'blue']") == set()  # no Python repr is stored
    assert _ids(os_client, index_config.alias, "attr=size.w=3") == {"m1"}


def test_a_parquet_decimal_price_is_a_number_on_the_node(os_client, encoder, index_config, tmp_path: Path) -> None:
    pq.write_table(
        pa.table(
            {
                "sku": ["d1", "d2"],
                "name": ["Cheap mug", "Dear mug"],
                "cost": pa.array([Decimal("4.99"), Decimal("120.00")], pa.decimal128(10, 2)),
                "code": pa.array([b"XL", b"\xff"], pa.binary()),
            }
        ),
        tmp_path / "catalog.parquet",
    )
    mapping = ColumnMapping.from_dict({"id": "sku", "title": "name", "price": "cost", "attribute_columns": ["code"]})
    stream = read_catalog(tmp_path / "catalog.parquet", mapping)
    assert ingest_products(os_client, stream, encoder, index_config, QUIET).indexed == 2 and not stream.rejects
    assert _ids(os_client, index_config.alias, "price=..10") == {"d1"}
    assert _ids(os_client, index_config.alias, "attr=code=xl") == {"d1"}
    assert _ids(os_client, index_config.alias, "attr=code=ff") == {"d2"}
