"""`ColumnMapping.from_file`: a bad --mapping file is one CatalogError naming the file and the fix."""

from pathlib import Path

import pytest

from tbhns_opensearch.catalog import ColumnMapping
from tbhns_opensearch.errors import CatalogError


def test_a_mapping_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "mapping.json"
    path.write_text('{"id": "sku", "title": "name", "attribute_columns": ["colour"]}', encoding="utf-8")
    assert ColumnMapping.from_file(path) == ColumnMapping.from_dict(
        {"id": "sku", "title": "name", "attribute_columns": ["colour"]}
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{oops", r"is not valid JSON \(Expecting property name.*line 1 column 2"),
        (b'["sku", "name"]', r"holds a JSON list, not an object"),
        (b'{"id": "sk\xfc"}', r"is not UTF-8 text"),
        (b"", r"is empty"),
        (b'{"attribute_columns": "colour"}', r"attribute_columns='colour' must be a list of column names"),
        (b'{"price": 3}', r"price=3 must name a source column"),
    ],
)
def test_a_bad_mapping_file_is_one_error_naming_it(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "mapping.json"
    path.write_bytes(content)
    with pytest.raises(CatalogError, match=rf"mapping file '.*mapping\.json'.*{problem}.*; "):
        ColumnMapping.from_file(path)


@pytest.mark.parametrize(
    ("path", "what"),
    [("dir", "is a directory"), ("/dev/null", "is not a regular file"), ("missing.json", "does not exist")],
)
def test_a_mapping_path_that_is_no_file_says_what_it_is(tmp_path: Path, path: str, what: str) -> None:
    (tmp_path / "dir").mkdir()
    with pytest.raises(CatalogError, match=rf"mapping file .* {what}.*; pass a JSON file"):
        ColumnMapping.from_file(tmp_path / path)
