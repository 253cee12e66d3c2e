"""Attributes: a value or a list of values per name (each element filterable), nested objects flattened to dotted
names, and the document terms a filter `attr=NAME=VALUE` matches."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tbhns_opensearch.catalog import ColumnMapping, Product, read_catalog
from tbhns_opensearch.index.documents import product_document


def test_lists_stay_lists_and_nested_objects_become_dotted_names(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(
        '{"id": "a", "title": "A", "attributes": {"colors": ["red", null, "blue"], "tags": [], '
        '"size": {"w": 3, "h": null, "unit": {"name": "cm"}}, "new": true}}\n',
        encoding="utf-8",
    )
    (product,) = read_catalog(path)
    assert product.attributes == {"colors": ["red", "blue"], "size.w": 3, "size.unit.name": "cm", "new": True}


def test_a_list_of_lists_or_objects_is_a_reject_naming_the_attribute(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    deep = "[" * 5000 + "]" * 5000  # text too deep for json.loads, inside a CSV cell
    path.write_text(
        'id,title,attributes\na,A,"{""variants"": [{""color"": ""red""}]}"\n'
        f'b,B,"{{""x"": {deep}}}"\nc,C,{deep}\nd,D,\n',
        encoding="utf-8",
    )
    stream = read_catalog(path)
    assert [p.id for p in stream] == ["d"]
    variants, too_deep, not_object = stream.rejects
    assert variants.field == "attributes" and "'variants' holds a list of lists or objects" in variants.reason
    assert '"colors": ["red", "blue"]' in variants.fix
    assert "not valid JSON" in too_deep.reason and "not valid JSON" in not_object.reason
    assert all(len(reject.value) <= 80 for reject in stream.rejects)


def test_attribute_columns_take_lists_and_structs(tmp_path: Path) -> None:
    pq.write_table(
        pa.table({"id": ["a"], "title": ["A"], "colors": [["red", "blue"]], "size": [{"w": 3, "h": 4}]}),
        tmp_path / "c.parquet",
    )
    mapping = ColumnMapping.from_dict({"id": "id", "title": "title", "attribute_columns": ["colors", "size"]})
    (product,) = read_catalog(tmp_path / "c.parquet", mapping)
    assert product.attributes == {"colors": ["red", "blue"], "size.w": 3, "size.h": 4}


def test_each_element_of_a_list_is_its_own_filter_term() -> None:
    document = product_document(Product(id="a", title="A", attributes={"colors": ["red", "blue"], "new": True}), None)
    assert document["attribute_terms"] == ["colors=red", "colors=blue", "new=True"]
    assert document["attributes_text"] == ["colors: red, blue", "new: True"]
