"""Each adapter on the real public sets (../shared/data or $TBHNS_DATA_DIR), checked against the data README.

A set whose folder is absent is skipped with the reason; Instacart is only ever read from there.
"""

from collections import Counter

import pytest

from tbhns_opensearch.catalog import ReadCounts
from tbhns_opensearch.catalog.adapters import dataset_dir, get_adapter, load_judgments, load_wands_queries, read_dataset


def _products(name):
    folder = dataset_dir(name)
    if not all((folder / f).is_file() for f in get_adapter(name).required_files):
        pytest.skip(f"{name} data not found in {folder}; set TBHNS_DATA_DIR to the folder holding {name}/")
    stream = read_dataset(name)
    return list(stream), stream


def test_icecat_all_products_and_judgments():
    products, stream = _products("icecat")
    assert stream.counts == ReadCounts(read=19406, ok=19406, rejected=0)
    assert all(not p.taxonomy_path and p.title for p in products)
    assert sum(p.brand != "" for p in products) == 19406
    judgments = load_judgments("icecat")
    assert len(judgments) == 2780 and len({j.query for j in judgments}) == 100
    assert Counter(j.grade for j in judgments) == {0: 1451, 3: 1041, 1: 221, 2: 67}
    assert {j.product_id for j in judgments} <= {p.id for p in products}


def test_amazon_uk_toys_paths():
    products, stream = _products("amazon-uk-toys")
    assert stream.counts == ReadCounts(read=10000, ok=10000, rejected=0)
    with_path = [p for p in products if p.taxonomy_path]
    assert len(with_path) == 9310
    assert len({p.taxonomy_path for p in with_path}) == 255
    assert {len(p.taxonomy_path) for p in with_path} == {2, 3, 4, 5}
    assert sum(p.price is not None for p in products) == 8565


def test_flipkart_trees_without_product_names():
    products, stream = _products("flipkart")
    assert stream.counts == ReadCounts(read=1002, ok=1002, rejected=0)
    assert sum(bool(p.taxonomy_path) for p in products) == 970
    assert not [p for p in products if p.taxonomy_path and p.title.lower() == p.taxonomy_path[-1].lower()]
    assert sum(bool(p.attributes) for p in products) > 900


def test_instacart_department_aisle_paths():
    products, stream = _products("instacart")
    assert stream.counts == ReadCounts(read=9288, ok=9288, rejected=0)
    assert {len(p.taxonomy_path) for p in products} == {0, 2}
    assert sum(not p.taxonomy_path for p in products) == 55  # department and aisle "missing"
    assert len({p.taxonomy_path[0] for p in products if p.taxonomy_path}) == 20


def test_wands_real_queries():
    folder = dataset_dir("wands")
    if not (folder / "query.csv").is_file():
        pytest.skip(f"WANDS query.csv not found in {folder}; set TBHNS_DATA_DIR to the folder holding wands/")
    queries = load_wands_queries(folder)
    assert len(queries) == 480 and queries[0].query == "salon chair"
