"""Samplers on a hand-made tree where every product's level relative to j1 is known.

Toys
├── Puzzles
│   ├── Jigsaws        j1 (positive)  j2 (relevant)  j3 j4 (leaf)  dup (same title as j1)
│   └── Brain Teasers  b1 b2 (sibling)
└── Games
    ├── Board Games    g1 g2 (cousin)
    └── Card Games     c1 (cousin)
Sports / Kites         k1 (only shares the root: never a taxonomy negative)
<unknown>              u1 u2
"""

from collections import Counter

import numpy as np
import pytest

from tbhns_opensearch.catalog.product import Product
from tbhns_opensearch.errors import TrainingError
from tbhns_opensearch.taxonomy import Taxonomy
from tbhns_opensearch.training.examples import TrainingPair
from tbhns_opensearch.training.negatives import (
    SAMPLERS,
    FalseNegativeFilter,
    Negative,
    TaxonomySampler,
    get_sampler,
)

PATHS = {
    "j1": ("Toys", "Puzzles", "Jigsaws"),
    "j2": ("Toys", "Puzzles", "Jigsaws"),
    "j3": ("Toys", "Puzzles", "Jigsaws"),
    "j4": ("Toys", "Puzzles", "Jigsaws"),
    "dup": ("Toys", "Puzzles", "Jigsaws"),
    "b1": ("Toys", "Puzzles", "Brain Teasers"),
    "b2": ("Toys", "Puzzles", "Brain Teasers"),
    "g1": ("Toys", "Games", "Board Games"),
    "g2": ("Toys", "Games", "Board Games"),
    "c1": ("Toys", "Games", "Card Games"),
    "k1": ("Sports", "Kites"),
    "u1": (),
    "u2": (),
}
TITLES = {"j1": "Sunset Jigsaw, 1000 Pieces", "dup": "sunset jigsaw 1000 pieces!"}
PRODUCTS = [Product(id=pid, title=TITLES.get(pid, f"Product {pid}"), taxonomy_path=p) for pid, p in PATHS.items()]
TAXONOMY = Taxonomy.from_products(PRODUCTS)
FILTER = FalseNegativeFilter.from_products(PRODUCTS)
PAIR = TrainingPair("jigsaw puzzle", "j1", frozenset({"j1", "j2"}), "real")
LEVEL_OF = {
    "j3": "leaf",
    "j4": "leaf",
    "b1": "sibling",
    "b2": "sibling",
    "g1": "cousin",
    "g2": "cousin",
    "c1": "cousin",
}


def _taxonomy_sampler(**counts: int) -> TaxonomySampler:
    return TaxonomySampler(TAXONOMY, FILTER, **counts)


@pytest.mark.parametrize("epoch", range(10))
def test_taxonomy_negatives_come_from_the_intended_levels(epoch: int) -> None:
    negatives = _taxonomy_sampler(leaf=2, sibling=1, cousin=1).sample(PAIR, seed=0, epoch=epoch)
    assert [n.level for n in negatives] == ["leaf", "leaf", "sibling", "cousin"]
    assert all(LEVEL_OF[n.product_id] == n.level for n in negatives)  # never j1, j2, dup, k1, u1, u2
    assert {n.product_id for n in negatives if n.level == "leaf"} == {"j3", "j4"}


def test_taxonomy_shortfall_falls_back_upward() -> None:
    sampler = _taxonomy_sampler(leaf=4, sibling=1, cousin=1)
    negatives = sampler.sample(PAIR, seed=0, epoch=0)
    # leaf has 2 usable (j3, j4): 2 move up; siblings have 2 (b1, b2) for 3 wanted: 1 moves up to cousins.
    assert Counter(n.level for n in negatives) == {"leaf": 2, "sibling": 2, "cousin": 2}
    assert sampler.log.short == 0


def test_taxonomy_shortfall_past_the_cousins_stays_unfilled() -> None:
    sampler = _taxonomy_sampler(leaf=1, sibling=1, cousin=5)
    negatives = sampler.sample(PAIR, seed=0, epoch=0)
    assert Counter(n.level for n in negatives) == {"leaf": 1, "sibling": 1, "cousin": 3}
    assert sampler.log.short == 1


def test_taxonomy_never_uses_the_root_or_unknown_products() -> None:
    sampler = _taxonomy_sampler(leaf=3, sibling=3, cousin=3)
    assert sampler.sample(TrainingPair("kite", "k1", frozenset({"k1"}), "real"), seed=0, epoch=0) == []
    assert sampler.sample(TrainingPair("thing", "u1", frozenset({"u1"}), "real"), seed=0, epoch=0) == []


def test_taxonomy_is_deterministic_and_rotates_with_epoch() -> None:
    sampler = _taxonomy_sampler(leaf=1, sibling=1, cousin=1)
    assert sampler.sample(PAIR, seed=5, epoch=2) == sampler.sample(PAIR, seed=5, epoch=2)
    by_epoch = {tuple(sampler.sample(PAIR, seed=5, epoch=e)) for e in range(12)}
    assert len(by_epoch) > 1
    cousins = {n.product_id for negatives in by_epoch for n in negatives if n.level == "cousin"}
    assert cousins == {"g1", "g2", "c1"}


def test_embedding_near_duplicates_are_excluded() -> None:
    embeddings = np.eye(len(PRODUCTS))  # (13, 13): all orthogonal ...
    embeddings[2] = embeddings[0] + 0.01  # ... except j3, almost j1
    fn_filter = FalseNegativeFilter.from_products(PRODUCTS, embeddings, cosine_threshold=0.95)
    sampler = TaxonomySampler(TAXONOMY, fn_filter, leaf=2, sibling=0, cousin=0)
    for epoch in range(5):
        negatives = sampler.sample(PAIR, seed=0, epoch=epoch)
        assert [n.product_id for n in negatives if n.level == "leaf"] == ["j4"]  # the other leaf slot moves up
        assert [n.level for n in negatives] == ["leaf", "sibling"]


def test_level_log_records_levels() -> None:
    sampler = _taxonomy_sampler(leaf=1, sibling=1, cousin=1)
    for epoch in range(3):
        sampler.sample(PAIR, seed=0, epoch=epoch)
    assert sampler.log.counts == {"leaf": 3, "sibling": 3, "cousin": 3}
    assert sampler.log.records[0].levels == ("leaf", "sibling", "cousin")
    assert sampler.log.records[0].requested == 3


@pytest.mark.parametrize("name", ["bm25", "ance"])
def test_retrieval_samplers_return_top_non_relevant_hits(name: str) -> None:
    calls = []

    def search(query: str, k: int) -> list[str]:
        calls.append((query, k))
        return ["j1", "j2", "dup", "k1", "k1", "b1", "g1"]

    sampler = get_sampler(name, search=search, false_negatives=FILTER, count=2, depth=20)
    assert sampler.sample(PAIR, seed=0, epoch=0) == [Negative("k1", name), Negative("b1", name)]
    assert calls == [("jigsaw puzzle", 20)]
    assert sampler.log.counts == {name: 2}


def test_random_sampler_returns_no_negatives() -> None:
    sampler = get_sampler("random")
    assert sampler.sample(PAIR, seed=0, epoch=0) == []
    assert sampler.log.short == 0


def test_registry_errors_list_the_valid_choices() -> None:
    assert set(SAMPLERS) == {"random", "taxonomy", "bm25", "ance"}
    with pytest.raises(TrainingError, match="'hard'; valid names: random, taxonomy, bm25, ance"):
        get_sampler("hard")
    with pytest.raises(TrainingError, match="sampler 'bm25' takes"):
        get_sampler("bm25", taxonomy=TAXONOMY)
    with pytest.raises(TrainingError, match="level counts"):
        get_sampler("taxonomy", taxonomy=TAXONOMY, false_negatives=FILTER, leaf=0, sibling=0, cousin=0)
