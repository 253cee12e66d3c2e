"""Bad records become rejects naming file, line, field, value and fix; good neighbours are always kept."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tbhns_opensearch.catalog import ColumnMapping, ReadCounts, read_catalog
from tbhns_opensearch.errors import CatalogError
from tests.helpers import ROOT

MALFORMED = ROOT / "tests" / "fixtures" / "malformed_catalog.jsonl"


def test_malformed_jsonl_keeps_good_lines_and_rejects_each_bad_one(tmp_path):
    rejects_path = tmp_path / "out" / "rejects.jsonl"
    stream = read_catalog(MALFORMED, rejects_path=rejects_path)
    products = list(stream)
    assert [p.id for p in products] == ["p1", "p2", "p6"]
    assert products[1].price == 12.5 and products[1].attributes == {"length_m": 2}
    assert stream.counts == ReadCounts(read=8, ok=3, rejected=5)
    assert [(r.line, r.field) for r in stream.rejects] == [
        (3, "(line)"),
        (4, "title"),
        (5, "price"),
        (6, "id"),
        (7, "id"),
    ]
    broken, untitled, bad_price, no_id, duplicate = stream.rejects
    assert broken.reason.startswith("invalid JSON") and broken.value.startswith('{"id": "p3"')
    assert untitled.reason == "missing title"
    assert bad_price.value == "cheap" and "price is not a number" in bad_price.reason
    assert no_id.reason == "missing id"
    assert duplicate.reason == f"duplicate id, first seen at {MALFORMED}:1"
    assert all(r.source == str(MALFORMED) and r.fix for r in stream.rejects)
    written = [json.loads(line) for line in rejects_path.read_text(encoding="utf-8").splitlines()]
    assert written == [r.to_dict() for r in stream.rejects]


def test_rejects_file_is_rewritten_on_each_pass(tmp_path):
    rejects_path = tmp_path / "rejects.jsonl"
    stream = read_catalog(MALFORMED, rejects_path=rejects_path)
    list(stream)
    list(stream)
    assert len(rejects_path.read_text(encoding="utf-8").splitlines()) == 5 == len(stream.rejects)


def test_non_object_json_line_is_rejected(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('[1, 2]\n{"id": "a", "title": "A"}\n', encoding="utf-8")
    stream = read_catalog(path)
    assert [p.id for p in stream] == ["a"]
    assert stream.rejects[0].reason == "line is not a JSON object"


def test_csv_rejects_name_the_file_line_including_multiline_records(tmp_path):
    path = tmp_path / "shop.csv"
    path.write_text(
        "sku,name,cost\n"
        'A1,"Mug\nwith a two-line title",4\n'  # lines 2-3
        "A2,,5\n"  # line 4: no title
        "A3,Plate,free\n"  # line 5: bad price
        "A4,Bowl,3,extra\n"  # line 6: too many fields
        "A5,Cup,2\n",
        encoding="utf-8",
    )
    stream = read_catalog(path, ColumnMapping.from_dict({"id": "sku", "title": "name", "price": "cost"}))
    assert [p.id for p in stream] == ["A1", "A5"]
    assert [(r.line, r.field) for r in stream.rejects] == [(4, "name"), (5, "cost"), (6, "(row)")]
    assert stream.rejects[2].reason == "row has 4 fields, the header has 3"


def test_parquet_rejects_name_the_row(tmp_path):
    pq.write_table(pa.table({"id": ["a", None, "c"], "title": ["A", "B", ""]}), tmp_path / "c.parquet")
    stream = read_catalog(tmp_path / "c.parquet")
    assert [p.id for p in stream] == ["a"]
    assert [(r.line, r.field, r.reason) for r in stream.rejects] == [
        (2, "id", "missing id"),
        (3, "title", "missing title"),
    ]


def test_bad_attributes_json_is_rejected(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text('id,title,attributes\na,A,"{""colour"": ""red""}"\nb,B,{oops\n', encoding="utf-8")
    stream = read_catalog(path)
    assert [p.attributes for p in stream] == [{"colour": "red"}]
    assert stream.rejects[0].field == "attributes" and "not valid JSON" in stream.rejects[0].reason


def test_a_non_utf8_csv_row_is_a_reject_on_its_own_line_with_a_fix(tmp_path):
    path = tmp_path / "c.csv"
    path.write_bytes(b"id,title\na,Mug\nb,Caf\xe9\nc,Kettle\n")  # one latin-1 byte on line 3
    stream = read_catalog(path)
    assert [p.id for p in stream] == ["a", "c"]  # its neighbours are read
    (reject,) = stream.rejects
    assert (reject.line, reject.reason) == (3, "not UTF-8") and "iconv" in reject.fix


def test_unwritable_rejects_path_is_an_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(CatalogError, match="cannot write the rejects file"):
        list(read_catalog(MALFORMED, rejects_path=blocker / "rejects.jsonl"))


def _jsonl(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "c.jsonl"
    path.write_text(
        "\n".join(['{"id": "a", "title": "A"}', *lines, '{"id": "z", "title": "Z"}']) + "\n", encoding="utf-8"
    )
    return path


def test_a_lone_surrogate_is_a_reject_of_its_record_naming_field_value_and_fix(tmp_path):
    rejects_path = tmp_path / "rejects.jsonl"
    stream = read_catalog(
        _jsonl(
            tmp_path,
            r'{"id": "b", "title": "Smile \ud83d"}',
            r'{"id": "c", "title": "C", "attributes": {"icon\udc00": "x"}}',
        ),
        rejects_path=rejects_path,
    )
    assert [p.id for p in stream] == ["a", "z"]
    title, attributes = stream.rejects
    assert (title.line, title.field, title.value) == (2, "title", r"Smile \ud83d")
    assert "lone UTF-16 surrogate" in title.reason and "pair" in title.fix
    assert (attributes.line, attributes.field) == (3, "attributes")
    assert len(rejects_path.read_text(encoding="utf-8").splitlines()) == 2


@pytest.mark.parametrize(
    "line",
    [
        "[" * 100_000,
        '{"id": "b", "title": "B", "attributes": {"x": ' + "[" * 500 + "]" * 500 + "}}",
        '{"id": "b", "title": "B", "taxonomy_path": ' + "[" * 900 + "]" * 900 + "}",
        '{"id": "b", "title": "B", "price": 1' + "0" * 5000 + "}",
    ],
)
def test_a_line_too_deep_or_too_long_to_parse_is_a_reject(tmp_path, line):
    stream = read_catalog(_jsonl(tmp_path, line))
    assert [p.id for p in stream] == ["a", "z"]
    (reject,) = stream.rejects
    assert reject.line == 2 and reject.reason and reject.fix and len(reject.value) <= 80


def _shop_csv(tmp_path: Path, rows: dict[int, str], count: int = 300) -> Path:
    """Header and `count` rows `p<line>,Product <line>,<line>`, with `rows` replacing the rows of some lines."""
    lines = ["id,title,price"] + [rows.get(line, f"p{line},Product {line},{line}") for line in range(2, count + 2)]
    path = tmp_path / "shop.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "closing",
    [
        {298: 'p298,"Lamp, large",298'},  # a later quoted field would close it
        {},  # nothing closes it before the end of the file
    ],
)
def test_an_unclosed_quote_rejects_its_line_and_reading_resumes_on_the_next(tmp_path, closing):
    path = _shop_csv(tmp_path, {281: 'p281,"Mug,281', **closing})
    stream = read_catalog(path)
    ids = [p.id for p in stream]
    assert len(ids) == 299 and "p281" not in ids and {"p282", "p298", "p301"} <= set(ids)
    assert stream.counts == ReadCounts(read=300, ok=299, rejected=1)
    (reject,) = stream.rejects
    assert (reject.line, reject.field, reject.value) == (281, "(row)", 'p281,"Mug,281')
    assert "quote" in reject.reason and "next line" in reject.fix


def test_a_long_record_with_too_many_fields_names_the_lines_it_spans(tmp_path):
    path = _shop_csv(tmp_path, {5: 'p5,"Mug', 6: 'with handle",5,extra'}, count=6)
    stream = read_catalog(path)
    assert [p.id for p in stream] == ["p2", "p3", "p4", "p7"]
    (reject,) = stream.rejects
    assert reject.line == 5 and reject.reason == "row has 4 fields, the header has 3 (the row spans lines 5-6)"
