"""The committed fixtures read cleanly and have the shape the later stages rely on."""

from collections import Counter

from tbhns_opensearch.catalog import ReadCounts, read_catalog, read_judgments_csv
from tests.helpers import ROOT

FIXTURES = ROOT / "tests" / "fixtures"


def test_icecat_fixture_holds_every_judged_product():
    stream = read_catalog(FIXTURES / "icecat_products.jsonl")
    ids = {p.id for p in stream}
    assert stream.counts == ReadCounts(read=1500, ok=1500, rejected=0)
    judgments = read_judgments_csv(FIXTURES / "icecat_judgments.csv")
    assert len({j.query for j in judgments}) == 20
    assert {j.product_id for j in judgments} <= ids
    relevant = Counter(j.query for j in judgments if j.grade >= 1)
    assert len(relevant) == 20 and sum(relevant.values()) >= 100


def test_toys_fixture_has_populous_sibling_leaves():
    products = list(read_catalog(FIXTURES / "toys_products.jsonl"))
    assert len(products) == 1500 and all(p.taxonomy_path for p in products)
    leaves = Counter(p.taxonomy_path for p in products)
    populous = [path for path, count in leaves.items() if count >= 30]
    parents = Counter(path[:-1] for path in populous)
    assert len(populous) >= 30
    assert sum(1 for count in parents.values() if count >= 2) >= 10


def test_fixtures_stay_small():
    size = sum(f.stat().st_size for f in FIXTURES.rglob("*") if f.is_file())
    assert size < 3_000_000
