import re

import pytest

from tbhns_opensearch.catalog.product import Product
from tbhns_opensearch.errors import TrainingError
from tbhns_opensearch.training.querygen import generate_queries, strip_model_numbers

BUILDING = ("Toys", "Building Sets")
PRODUCTS = [
    Product(id="l1", title="LEGO 10969 DUPLO Fire Station Set - 76 Pieces", brand="LEGO", taxonomy_path=BUILDING),
    Product(id="l2", title="LEGO City Police Car 60312 (BX-200)", brand="LEGO", taxonomy_path=BUILDING),
    Product(id="m1", title="Mega Bloks Big Building Bag SKU-88812", brand="Mega Bloks", taxonomy_path=BUILDING),
    Product(id="k1", title="Rainbow Stunt Kite XK9000 for Kids", brand="Sky", taxonomy_path=("Sports", "Kites")),
    Product(id="n1", title="Plain Wooden Box A4B7"),
]
SKU = re.compile(r"\d{5,}|(?=.*\d)(?=.*[a-z])[a-z0-9-]+")


def test_strip_model_numbers() -> None:
    assert strip_model_numbers("LEGO 10969 DUPLO, XK9000 E-0123 1000 pcs 3+ 12cm") == [
        "lego",
        "duplo",
        "1000",
        "pcs",
        "3+",
        "12cm",
    ]


@pytest.mark.parametrize("seed", range(5))
def test_title_queries_have_no_model_numbers(seed: int) -> None:
    titles = [q for q in generate_queries(PRODUCTS, seed=seed, per_product=4) if q.kind == "title"]
    assert titles
    for query in titles:
        assert not [w for w in query.text.split() if SKU.fullmatch(w) and not w.endswith("cm")], query


def test_queries_are_marked_generated_with_their_sources() -> None:
    queries = {q.text: q for q in generate_queries(PRODUCTS, seed=0, per_product=4)}
    assert queries["lego building sets"].source_ids == ("l1", "l2")
    assert queries["lego building sets"].kind == "brand_type"
    assert queries["building sets"].source_ids == ("l1", "l2", "m1")
    judgments = [j for q in queries.values() for j in q.judgments()]
    assert judgments and all(j.source == "generated" for j in judgments)


def test_mates_sharing_brand_and_type_get_grade_1() -> None:
    queries = generate_queries(PRODUCTS, seed=0, per_product=4)
    (query,) = [q for q in queries if q.kind == "title" and "l1" in q.source_ids]
    assert query.source_ids == ("l1",) and query.mate_ids == ("l2",)
    assert {(j.product_id, j.grade) for j in query.judgments()} == {("l1", 2), ("l2", 1)}
    without_mates = generate_queries(PRODUCTS, seed=0, per_product=4, grade_mates=False)
    assert [q.mate_ids for q in without_mates if q.text == query.text] == [()]


def test_products_without_type_only_make_title_queries() -> None:
    queries = generate_queries(PRODUCTS, seed=0, per_product=4)
    assert {q.kind for q in queries if "n1" in q.source_ids} == {"title"}


def test_type_attribute_and_attribute_queries() -> None:
    products = [
        Product(id="a", title="Acme Laptop", brand="Acme", attributes={"type": "Laptops", "colour": "Silver"}),
        Product(id="b", title="Bolt Laptop", brand="Bolt", attributes={"type": "Laptops", "colour": "silver"}),
        Product(id="c", title="Core Laptop", brand="Core", attributes={"type": "Laptops", "colour": "Black"}),
    ]
    queries = {q.text: q for q in generate_queries(products, seed=0, per_product=4, type_attribute="type")}
    assert queries["silver laptops"].kind == "attributes"
    assert queries["silver laptops"].source_ids == ("a", "b")
    assert queries["acme laptops"].source_ids == ("a",)


def test_generation_is_deterministic_for_a_seed() -> None:
    assert generate_queries(PRODUCTS, seed=3) == generate_queries(PRODUCTS, seed=3)
    runs = {tuple(q.text for q in generate_queries(PRODUCTS, seed=s)) for s in range(5)}
    assert len(runs) > 1
    with pytest.raises(TrainingError, match="per_product=0"):
        generate_queries(PRODUCTS, seed=0, per_product=0)
