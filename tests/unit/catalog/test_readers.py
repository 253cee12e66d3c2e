"""Catalog readers: the three formats, column mappings, format choice and the canonical JSONL round trip."""

import gzip
import json
import os
from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tbhns_opensearch.catalog import ColumnMapping, Product, ReadCounts, read_catalog, write_catalog_jsonl
from tbhns_opensearch.errors import CatalogError

CABLE = Product(
    id="p1",
    title="USB-C cable",
    description="1 m, braided",
    brand="Anker",
    attributes={"length_m": 1.0, "colour": "black"},
    price=9.99,
    rating=4.5,
    taxonomy_path=("Electronics", "Cables"),
)
LAMP = Product(id="p2", title="Desk lamp", taxonomy_path=("Home", "Lighting"))

SHOP_MAPPING = ColumnMapping.from_dict(
    {
        "id": "sku",
        "title": "name",
        "brand": "maker",
        "price": "cost",
        "taxonomy": "category",
        "taxonomy_separator": " / ",
        "attribute_columns": ["colour"],
    }
)


def test_canonical_jsonl_round_trip(tmp_path):
    path = tmp_path / "catalog.jsonl"
    assert write_catalog_jsonl([CABLE, LAMP], path) == 2
    stream = read_catalog(path)
    assert list(stream) == [CABLE, LAMP]
    assert stream.counts == ReadCounts(read=2, ok=2, rejected=0)
    assert not (tmp_path / "catalog.jsonl.partial").exists()


def test_csv_with_mapping(tmp_path):
    path = tmp_path / "shop.csv"
    path.write_text(
        "sku,name,maker,cost,category,colour,unused\n"
        'A1,"Mug, large",Acme,£4.50,Home / Kitchen / Mugs,red,x\n'
        "A2,Plate,,,Home / Kitchen,,y\n",
        encoding="utf-8",
    )
    mug, plate = read_catalog(path, SHOP_MAPPING)
    assert mug == Product(
        id="A1",
        title="Mug, large",
        brand="Acme",
        attributes={"colour": "red"},
        price=4.5,
        taxonomy_path=("Home", "Kitchen", "Mugs"),
    )
    assert plate == Product(id="A2", title="Plate", taxonomy_path=("Home", "Kitchen"))


def test_tsv_by_suffix(tmp_path):
    path = tmp_path / "shop.tsv"
    path.write_text("id\ttitle\tprice\nt1\tTea pot\t12\n", encoding="utf-8")
    assert [p.price for p in read_catalog(path)] == [12.0]


def test_parquet_in_batches_with_typed_columns(tmp_path, monkeypatch):
    monkeypatch.setattr("tbhns_opensearch.catalog.readers.PARQUET_BATCH_ROWS", 2)
    table = pa.table(
        {
            "sku": [1, 2, 3],
            "name": ["Mug", "Plate", "Bowl"],
            "cost": [4.5, None, 2.0],
            "category": [["Home", "Mugs"], [], ["Home", "Bowls"]],
            "colour": ["red", None, "blue"],
            "maker": ["Acme", "Acme", "Bowlco"],
        }
    )
    pq.write_table(table, tmp_path / "shop.parquet")
    products = list(read_catalog(tmp_path / "shop.parquet", SHOP_MAPPING))
    assert [p.id for p in products] == ["1", "2", "3"]
    assert products[0].taxonomy_path == ("Home", "Mugs") and products[0].attributes == {"colour": "red"}
    assert products[1].price is None and products[1].taxonomy_path == ()


def test_parquet_decimals_are_numbers_and_binary_and_timestamps_are_text(tmp_path):
    pq.write_table(
        pa.table(
            {
                "id": pa.array([Decimal(12345678901234567890), Decimal(2)], pa.decimal128(20, 0)),
                "title": pa.array([b"Mug", b"Plate"], pa.binary()),
                "price": pa.array([Decimal("9.99"), Decimal("1200.00")], pa.decimal128(10, 2)),
                "rating": pa.array([4, 5], pa.int8()),
                "code": pa.array([b"XL", b"\xff\x00"], pa.binary()),
                "added": pa.array([datetime(2024, 5, 1, 12, 30, tzinfo=UTC), None], pa.timestamp("s", tz="UTC")),
                "day": pa.array([date(2024, 5, 1), None], pa.date32()),
                "sizes": pa.array([[Decimal("1.5"), Decimal("2.0")], []], pa.list_(pa.decimal128(4, 1))),
            }
        ),
        tmp_path / "c.parquet",
    )
    mapping = ColumnMapping.from_dict(
        {
            "id": "id",
            "title": "title",
            "price": "price",
            "rating": "rating",
            "attribute_columns": ["code", "added", "day", "sizes"],
        }
    )
    stream = read_catalog(tmp_path / "c.parquet", mapping)
    products = list(stream)
    assert stream.counts.rejected == 0
    assert [(p.id, p.title, p.price, p.rating) for p in products] == [
        ("12345678901234567890", "Mug", 9.99, 4.0),
        ("2", "Plate", 1200.0, 5.0),
    ]
    assert products[0].attributes == {
        "code": "XL",
        "added": "2024-05-01T12:30:00+00:00",
        "day": "2024-05-01",
        "sizes": [1.5, 2],
    }
    assert products[1].attributes == {"code": "ff00"}  # not UTF-8: hex


def test_parquet_map_and_canonical_columns(tmp_path):
    table = pa.table(
        {
            "id": ["m1"],
            "title": ["Mug"],
            "attributes": pa.array([[("colour", "red")]], type=pa.map_(pa.string(), pa.string())),
            "taxonomy_path": [["Home", "Mugs"]],
        }
    )
    pq.write_table(table, tmp_path / "catalog.pq")
    (mug,) = read_catalog(tmp_path / "catalog.pq")
    assert mug.attributes == {"colour": "red"} and mug.leaf_category == "Mugs"


def test_format_override_reads_jsonl_without_suffix(tmp_path):
    path = tmp_path / "export.txt"
    path.write_text(json.dumps(LAMP.to_dict()) + "\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"cannot tell the format .*'\.txt'"):
        read_catalog(path)
    assert list(read_catalog(path, fmt="jsonl")) == [LAMP]


def test_unknown_format_lists_valid_ones(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text("", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"unknown catalog format 'xml'.*'csv', 'jsonl', 'parquet', 'tsv'"):
        read_catalog(path, fmt="xml")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(CatalogError, match=r"nope\.csv' does not exist"):
        read_catalog(tmp_path / "nope.csv")


@pytest.mark.parametrize(
    ("path", "what"),
    [("folder", "is a directory"), ("fifo.jsonl", "is not a regular file"), ("/dev/zero", "is not a regular file")],
)
def test_a_catalog_that_is_no_regular_file_says_what_it_is(tmp_path, path, what):
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "fifo.jsonl")
    with pytest.raises(CatalogError, match=rf"catalog file '.*' {what}.*; pass the path of a catalog file"):
        read_catalog(tmp_path / path)


@pytest.mark.parametrize("name", ["catalog.jsonl.gz", "catalog.csv.gz", "catalog.jsonl"])
def test_gzipped_catalogs_are_read_whatever_their_suffix(tmp_path, name):
    text = (
        '{"id": "p1", "title": "Mug"}\n{"id": "p2", "title": "Plate"}\n'
        if ".jsonl" in name
        else "id,title\np1,Mug\np2,Plate\n"
    )
    with gzip.open(tmp_path / name, "wt", encoding="utf-8") as out:
        out.write(text)
    stream = read_catalog(tmp_path / name)
    assert [p.title for p in stream] == ["Mug", "Plate"] and stream.counts == ReadCounts(read=2, ok=2, rejected=0)


def test_a_truncated_gzip_is_one_error_naming_the_file(tmp_path):
    with gzip.open(tmp_path / "c.jsonl.gz", "wt", encoding="utf-8") as out:
        out.writelines(f'{{"id": "p{i}", "title": "Product {i} {os.urandom(8).hex()}"}}\n' for i in range(2000))
    (tmp_path / "c.jsonl.gz").write_bytes((tmp_path / "c.jsonl.gz").read_bytes()[:20_000])
    with pytest.raises(
        CatalogError, match=r"c\.jsonl\.gz: the gzip data is corrupt or cut short .*the records before it were read"
    ):
        list(read_catalog(tmp_path / "c.jsonl.gz"))


def test_a_gzipped_parquet_file_says_to_decompress_it(tmp_path):
    pq.write_table(pa.table({"id": ["a"], "title": ["A"]}), tmp_path / "c.parquet")
    (tmp_path / "c.parquet.gz").write_bytes(gzip.compress((tmp_path / "c.parquet").read_bytes()))
    with pytest.raises(CatalogError, match=r"gzip-compressed.*decompress it"):
        list(read_catalog(tmp_path / "c.parquet.gz"))


def test_a_duplicate_column_name_is_refused_naming_it(tmp_path):
    (tmp_path / "c.csv").write_text("id,title,price,price\na,Mug,3,4\n", encoding="utf-8")
    pq.write_table(
        pa.Table.from_arrays([pa.array(["a"]), pa.array(["A"]), pa.array(["B"])], names=["id", "title", "title"]),
        tmp_path / "c.parquet",
    )
    with pytest.raises(CatalogError, match=r"c\.csv: column 'price' appears 2 times in the header; rename"):
        list(read_catalog(tmp_path / "c.csv"))
    with pytest.raises(CatalogError, match=r"c\.parquet: column 'title' appears 2 times"):
        list(read_catalog(tmp_path / "c.parquet"))


def test_explicit_mapping_must_name_existing_columns(tmp_path):
    path = tmp_path / "shop.csv"
    path.write_text("sku,name\nA1,Mug\n", encoding="utf-8")
    missing = r"\['maker', 'cost', 'category', 'colour'\].*its columns are \['name', 'sku'\]"
    with pytest.raises(CatalogError, match=missing):
        list(read_catalog(path, SHOP_MAPPING))


def test_default_mapping_needs_only_id_and_title(tmp_path):
    path = tmp_path / "shop.csv"
    path.write_text("id,title\nA1,Mug\n", encoding="utf-8")
    assert [p.title for p in read_catalog(path)] == ["Mug"]
    path.write_text("sku,title\nA1,Mug\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"\['id'\] named by the column mapping are not in the file"):
        list(read_catalog(path))


def test_mapping_from_dict_refuses_unknown_fields():
    with pytest.raises(CatalogError, match=r"unknown field\(s\) \['name'\]; valid fields are"):
        ColumnMapping.from_dict({"name": "title"})


def test_stream_can_be_iterated_again_from_the_start(tmp_path):
    path = tmp_path / "catalog.jsonl"
    write_catalog_jsonl([CABLE, LAMP], path)
    stream = read_catalog(path)
    assert next(iter(stream)) == CABLE
    assert [p.id for p in stream] == ["p1", "p2"] and stream.counts.read == 2


def test_a_corrupt_parquet_page_is_one_catalog_error_naming_the_file(tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "catalog.parquet"
    table = pa.table({"id": [str(i) for i in range(2000)], "title": [f"product {i} " * 20 for i in range(2000)]})
    pq.write_table(table, path, compression="none", row_group_size=1000)
    data = bytearray(path.read_bytes())
    middle = len(data) * 3 // 4  # inside the second row group's pages
    data[middle : middle + 2000] = b"\xff" * 2000
    path.write_bytes(bytes(data))
    with pytest.raises(CatalogError, match=r"catalog.parquet: unreadable after row \d+ .*repair or re-export"):
        list(read_catalog(path))
