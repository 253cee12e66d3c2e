"""Dataset adapters on hand-made records and the hand-made WANDS files; no shared data needed."""

import json
import zipfile
from pathlib import Path

import pytest

from tbhns_opensearch.catalog import Judgment, Product, ReadCounts
from tbhns_opensearch.catalog.adapters import (
    ADAPTERS,
    dataset_dir,
    get_adapter,
    load_judgments,
    load_wands_queries,
    read_dataset,
)
from tbhns_opensearch.catalog.adapters.amazon_uk_toys import amazon_product
from tbhns_opensearch.catalog.adapters.flipkart import flipkart_product, parse_category_tree, parse_specifications
from tbhns_opensearch.catalog.adapters.icecat import icecat_product
from tbhns_opensearch.catalog.adapters.instacart import instacart_product
from tbhns_opensearch.catalog.stream import RecordError
from tbhns_opensearch.errors import CatalogError
from tests.helpers import ROOT

WANDS_FIXTURE = ROOT / "tests" / "fixtures" / "wands"


def test_registry_lists_every_set_and_refuses_unknown_names():
    assert sorted(ADAPTERS) == ["amazon-uk-toys", "flipkart", "homedepot", "icecat", "instacart", "wands"]
    with pytest.raises(CatalogError, match=r"unknown dataset 'amazon'; valid datasets are \['amazon-uk-toys'"):
        get_adapter("amazon")


def test_dataset_dir_prefers_argument_then_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TBHNS_DATA_DIR", str(tmp_path))
    assert dataset_dir("icecat") == tmp_path / "icecat"
    assert dataset_dir("icecat", "/elsewhere") == Path("/elsewhere")
    monkeypatch.delenv("TBHNS_DATA_DIR")
    assert dataset_dir("flipkart").parts[-3:] == ("shared", "data", "flipkart")


def test_missing_files_say_where_to_get_them(tmp_path):
    with pytest.raises(CatalogError, match=r"\['product.csv'\] not found.*github.com/wayfair/WANDS.*TBHNS_DATA_DIR"):
        read_dataset("wands", tmp_path)
    with pytest.raises(CatalogError, match="'amazon-uk-toys' has no relevance judgments"):
        load_judgments("amazon-uk-toys", tmp_path)


def test_icecat_product_converts_cents_and_strips_attribute_prefixes():
    product = icecat_product(
        {
            "id": "3920564",
            "name": "006R90321",
            "title": "Xerox toner",
            "supplier": "Xerox",
            "short_description": "Toner (6 per box)",
            "price": 4995,
            "img_high": "http://x",
            "attr_t_type": "Original",
            "attr_n_quantity_per_pack": 6.0,
            "attr_b_colour": False,
            "attr_b_height_adjustment": True,
            "attr_n_height_adjustment": 130.0,
        }
    )
    assert product == Product(
        id="3920564",
        title="Xerox toner",
        description="Toner (6 per box)",
        brand="Xerox",
        price=49.95,
        attributes={
            "name": "006R90321",
            "type": "Original",
            "quantity_per_pack": 6.0,
            "colour": False,
            "height_adjustment": True,
            "height_adjustment_n": 130.0,
        },
    )


def test_icecat_rows_number_records_per_file(tmp_path):
    records = [{"id": "1", "title": "A", "price": 100}, {"id": "2", "price": 5}, "junk"]
    for part in range(1, 5):
        with zipfile.ZipFile(tmp_path / f"products_{part}.json.zip", "w") as archive:
            archive.writestr(f"{part}.json", json.dumps(records if part == 1 else []))
    stream = read_dataset("icecat", tmp_path)
    assert [(p.id, p.price) for p in stream] == [("1", 1.0)]
    assert [(r.line, r.field) for r in stream.rejects] == [(2, "title"), (3, "(record)")]
    assert stream.rejects[0].source.endswith("products_1.json.zip!1.json")


def test_amazon_product_parses_published_price_and_rating_text():
    product = amazon_product(
        {
            "uniq_id": "u1",
            "product_name": "Train set",
            "manufacturer": "Hornby",
            "price": "£1.50 - £20.00",
            "average_review_rating": "4.5 out of 5 stars",
            "category_path": "Hobbies > Model Trains & Railway Sets",
            "number_of_reviews": "1,040",
            "number_available_in_stock": "5\xa0new",
            "number_of_answered_questions": "",
        }
    )
    assert (product.price, product.rating, product.brand) == (1.5, 4.5, "Hornby")
    assert product.taxonomy_path == ("Hobbies", "Model Trains & Railway Sets")
    assert product.attributes == {"number_of_reviews": 1040, "number_available_in_stock": "5 new"}


def test_amazon_product_rejects_bad_price_by_column():
    with pytest.raises(RecordError) as caught:
        amazon_product({"uniq_id": "u1", "product_name": "Kite", "price": "ask us"})
    assert caught.value.field == "price"


def test_flipkart_product_reads_the_original_kaggle_spelling():
    product = flipkart_product(
        {
            "uniq_id": "f1",
            "product_name": "Alisha Solid Women's Cycling Shorts",
            "brand": "Alisha",
            "product_category_tree": "[\"Clothing >> Women's Clothing >> Lingerie, Sleep & Swimwear >> Shorts >> "
            "Alisha Shorts >> Alisha Solid Women's Cycling Shorts\"]",
            "product_specifications": '{"product_specification"=>[{"key"=>"Number of Contents in Sales Package", '
            '"value"=>"Pack of 3"}, {"key"=>"Fabric", "value"=>"Cotton Lycra"}, '
            '{"value"=>"3 shorts"}]}',
            "retail_price": "999",
            "discounted_price": "379",
            "product_rating": "No rating available",
        }
    )
    assert product.taxonomy_path == (
        "Clothing",
        "Women's Clothing",
        "Lingerie, Sleep & Swimwear",
        "Shorts",
        "Alisha Shorts",
    )
    assert product.attributes == {
        "Number of Contents in Sales Package": "Pack of 3",
        "Fabric": "Cotton Lycra",
        "retail_price": 999.0,
    }
    assert (product.price, product.rating) == (379.0, None)


def test_flipkart_tree_drops_a_truncated_product_name_only():
    tree = "['pet supplies', 'grooming', 'skin  coat care', 'shampoo', 'sicons all purpose arnica dog shampoo 500 ml']"
    assert parse_category_tree(tree, "sicons all purpose arnica dog shampoo") == (
        "pet supplies",
        "grooming",
        "skin coat care",
        "shampoo",
    )
    assert parse_category_tree(
        "['furniture', 'sofa beds  futons', 'fabhomedecor fabric double sofa bed finish colo']",
        "FabHomeDecor Fabric Double Sofa Bed (Finish Colour - Brown)",
    ) == ("furniture", "sofa beds futons")
    assert parse_category_tree("['pet supplies', 'toys', 'comfort toys']", "kennel rubber dumbell") == (
        "pet supplies",
        "toys",
        "comfort toys",
    )


def test_flipkart_unparseable_fields_are_record_errors():
    with pytest.raises(RecordError, match="not a JSON or Python literal"):
        parse_category_tree("['footwear', ", "x")
    with pytest.raises(RecordError, match="not key/value pairs"):
        parse_specifications("['Color: Red']")


def test_flipkart_zero_prices_and_ratings_mean_unknown():
    product = flipkart_product(
        {
            "uniq_id": "f2",
            "product_name": "Pen",
            "retail_price": "0.0",
            "discounted_price": "0.0",
            "product_rating": "0.0",
        }
    )
    assert (product.price, product.rating, product.attributes) == (None, None, {})


def test_instacart_product_path_and_unknown_lookups():
    base = {"product_id": "9", "product_name": "Oat milk", "aisle_id": "84", "department_id": "16"}
    assert instacart_product({**base, "department": "dairy eggs", "aisle": "milk"}).taxonomy_path == (
        "dairy eggs",
        "milk",
    )
    assert instacart_product({**base, "department": "missing", "aisle": "missing"}).taxonomy_path == ()
    with pytest.raises(RecordError, match="unknown aisle id"):
        instacart_product({**base, "department": "dairy eggs", "aisle": None})


def test_wands_fixture_products_and_rejects():
    stream = read_dataset("wands", WANDS_FIXTURE)
    products = {p.id: p for p in stream}
    assert stream.counts == ReadCounts(read=8, ok=7, rejected=1)
    assert (stream.rejects[0].line, stream.rejects[0].field) == (6, "product_name")
    bed = products["0"]
    assert bed.taxonomy_path == ("Furniture", "Bedroom Furniture", "Beds & Headboards", "Beds")
    assert bed.attributes == {
        "overallwidth-sidetoside": "64.7",
        "dsprimaryproductstyle": "modern",
        "color": "natural",
        "product_class": "Beds",
        "rating_count": 15,
        "review_count": 15,
    }
    assert (bed.rating, bed.price, products["2"].rating) == (4.5, None, None)
    siblings = {p.id for p in products.values() if p.taxonomy_path[:-1] == bed.taxonomy_path[:-1]}
    assert siblings == {"0", "1", "2"}


def test_wands_queries_and_graded_labels():
    queries = load_wands_queries(WANDS_FIXTURE)
    assert [(q.query_id, q.query) for q in queries] == [
        ("0", "salon chair"),
        ("1", "smart coffee table"),
        ("2", "dinosaur"),
    ]
    judgments = load_judgments("wands", WANDS_FIXTURE)
    assert judgments[:3] == [
        Judgment("salon chair", "6", 2),
        Judgment("salon chair", "3", 0),
        Judgment("smart coffee table", "3", 1),
    ]
    assert len(judgments) == 7


def test_wands_bad_label_names_the_line(tmp_path):
    (tmp_path / "query.csv").write_text("query_id\tquery\tquery_class\n0\tsofa\tSofas\n", encoding="utf-8")
    (tmp_path / "label.csv").write_text(
        "id\tquery_id\tproduct_id\tlabel\n0\t0\t1\tExact\n1\t0\t2\tMaybe\n", encoding="utf-8"
    )
    with pytest.raises(CatalogError, match=r"label.csv:3: label 'Maybe' is not one of \['Exact', 'Irrelevant'"):
        load_judgments("wands", tmp_path)
