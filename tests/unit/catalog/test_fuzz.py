"""Property tests of the catalog readers: whatever the file holds, the reader never crashes; every record is a
valid product or a reject with its line number (a file-level problem is one CatalogError)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tbhns_opensearch.catalog import read_catalog
from tbhns_opensearch.errors import CatalogError

FIELDS = ["id", "title", "description", "brand", "price", "rating", "taxonomy_path", "attributes", "extra"]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
JSONL_LINES = st.lists(
    st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=6).map(json.dumps)
    | st.text(max_size=40).filter(lambda line: "\n" not in line and "\r" not in line),
    max_size=12,
)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _read(suffix: str, content: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"catalog{suffix}"
        path.write_bytes(content)
        lines = max(1, len(content.splitlines()))  # \r, \n and \r\n all end a line, for csv as for us
        try:
            stream = read_catalog(path)
            products = list(stream)
        except CatalogError:
            return  # a file-level problem, said in one error
        assert all(product.id and product.title for product in products)
        assert stream.counts.ok == len(products)
        assert stream.counts.read == stream.counts.ok + stream.counts.rejected == len(products) + len(stream.rejects)
        assert all(1 <= reject.line <= lines for reject in stream.rejects)


@FUZZ
@given(JSONL_LINES)
def test_jsonl_records_are_products_or_rejects_with_a_line(lines: list[str]) -> None:
    _read(".jsonl", "\n".join(lines).encode("utf-8"))


@FUZZ
@given(st.binary(max_size=300))
@example(b"\r\x00")  # a lone carriage return ends a CSV line: the reject is on line 3
def test_csv_bytes_never_crash_the_reader(content: bytes) -> None:
    _read(".csv", b"id,title,price\n" + content)


@FUZZ
@given(st.binary(max_size=300))
def test_jsonl_bytes_never_crash_the_reader(content: bytes) -> None:
    _read(".jsonl", content)
