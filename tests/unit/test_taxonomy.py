"""Taxonomy on a hand-made tree; distances computed by hand.

root
├── Toys
│   ├── Puzzles        (p: sits at the internal node)
│   │   ├── Jigsaws       j1 j2
│   │   └── Brain Teasers b1
│   └── Games
│       └── Board Games   g1
├── Sports
│   └── Kites            k1
└── <unknown>            u1 u2
"""

import numpy as np
import pytest

from tbhns_opensearch.catalog.product import Product
from tbhns_opensearch.errors import TrainingError
from tbhns_opensearch.taxonomy import ROOT, UNKNOWN, Taxonomy

JIGSAWS = ("Toys", "Puzzles", "Jigsaws")
TEASERS = ("Toys", "Puzzles", "Brain Teasers")
BOARD = ("Toys", "Games", "Board Games")
KITES = ("Sports", "Kites")


@pytest.fixture
def tax() -> Taxonomy:
    paths = {"j1": JIGSAWS, "j2": JIGSAWS, "b1": TEASERS, "g1": BOARD, "p": ("Toys", "Puzzles"), "k1": KITES}
    products = [Product(id=pid, title=pid, taxonomy_path=path) for pid, path in paths.items()]
    products += [Product(id="u1", title="u1"), Product(id="u2", title="u2")]
    return Taxonomy.from_products(products)


def test_structure(tax: Taxonomy) -> None:
    assert tax.source == "catalog"
    assert JIGSAWS in tax and ("Toys", "Jigsaws") not in tax
    assert tax.parent(JIGSAWS) == ("Toys", "Puzzles")
    assert tax.parent(ROOT) is None
    assert tax.children(ROOT) == (UNKNOWN, ("Sports",), ("Toys",))
    assert tax.children(("Toys", "Puzzles")) == (TEASERS, JIGSAWS)
    assert tax.siblings(JIGSAWS) == (TEASERS,)
    assert tax.siblings(("Toys",)) == (UNKNOWN, ("Sports",))
    assert tax.depth(ROOT) == 0 and tax.depth(JIGSAWS) == 3


def test_lca_and_distance(tax: Taxonomy) -> None:
    assert tax.lca(JIGSAWS, TEASERS) == ("Toys", "Puzzles")
    assert tax.lca(JIGSAWS, BOARD) == ("Toys",)
    assert tax.lca(JIGSAWS, KITES) == ROOT
    assert tax.lca(JIGSAWS, ("Toys", "Puzzles")) == ("Toys", "Puzzles")
    assert tax.distance(JIGSAWS, JIGSAWS) == 0
    assert tax.distance(JIGSAWS, TEASERS) == 2  # 3 + 3 - 2*2
    assert tax.distance(JIGSAWS, BOARD) == 4  # 3 + 3 - 2*1
    assert tax.distance(JIGSAWS, KITES) == 5  # 3 + 2 - 0


def test_product_distance(tax: Taxonomy) -> None:
    assert tax.product_distance("j1", "j2") == 0
    assert tax.product_distance("j1", "p") == 1
    assert tax.product_distance("j1", "b1") == 2
    assert tax.product_distance("j1", "g1") == 4
    assert tax.product_distance("j1", "u1") == 4  # 3 + 1 via the root
    assert tax.product_distance("u1", "u2") == 0


def test_products_per_node(tax: Taxonomy) -> None:
    assert tax.products_at(("Toys", "Puzzles")) == ("p",)
    assert tax.products_under(("Toys", "Puzzles")) == ("b1", "j1", "j2", "p")
    assert tax.products_under(("Toys",)) == ("b1", "g1", "j1", "j2", "p")
    assert tax.products_at(("Toys",)) == ()
    assert len(tax.products_under(ROOT)) == 8


def test_unknown_node(tax: Taxonomy) -> None:
    assert tax.leaf_of("u1") == UNKNOWN
    assert tax.is_unknown("u1") and not tax.is_unknown("j1")
    assert tax.products_at(UNKNOWN) == ("u1", "u2")
    assert tax.parent(UNKNOWN) == ROOT


def test_errors_name_the_value(tax: Taxonomy) -> None:
    with pytest.raises(TrainingError, match="no node .*'Jigsaws'"):
        tax.depth(("Jigsaws",))
    with pytest.raises(TrainingError, match="'zz' is not in the taxonomy"):
        tax.leaf_of("zz")
    with pytest.raises(TrainingError, match="occurs twice"):
        Taxonomy.from_products([Product(id="a", title="A"), Product(id="a", title="B")])
    with pytest.raises(TrainingError, match="reserved node"):
        Taxonomy.from_products([Product(id="a", title="A", taxonomy_path=(UNKNOWN[0], "x"))])
    with pytest.raises(TrainingError, match="unknown taxonomy source 'wiki'"):
        Taxonomy(paths={}, source="wiki")


def test_induced_from_attributes() -> None:
    products = [
        Product(id="a", title="A", attributes={"category": "Computers", "type": "Laptops"}),
        Product(id="b", title="B", attributes={"category": "Computers", "type": "Desktops"}),
        Product(id="c", title="C", attributes={"category": "Computers"}),
        Product(id="d", title="D", attributes={"type": "Laptops"}),
    ]
    tax = Taxonomy.induced(products, attributes=("category", "type"))
    assert tax.source == "induced:attribute"
    assert tax.paths == {
        "a": ("Computers", "Laptops"),
        "b": ("Computers", "Desktops"),
        "c": ("Computers",),
        "d": UNKNOWN,
    }
    assert Taxonomy.induced(products, attributes="type").leaf_of("d") == ("Laptops",)


def _clustered_embeddings() -> np.ndarray:
    """8 unit-ish vectors: 2 groups (e1, e2), each split in 2 subgroups (+-e3), each a close pair (+-e4)."""
    rows = []
    for group in (0, 1):
        for sub in (1.0, -1.0):
            for pair in (0.01, -0.01):
                vector = np.zeros(4)
                vector[group], vector[2], vector[3] = 1.0, 0.3 * sub, pair
                rows.append(vector)
    return np.array(rows)  # (8, 4)


def test_induced_from_clustering() -> None:
    products = [Product(id=f"p{i}", title=f"P{i}") for i in range(8)]
    tax = Taxonomy.induced(products, embeddings=_clustered_embeddings(), levels=2)
    assert tax.source == "induced:clustering"
    assert len(tax.children(ROOT)) == 2  # round(8 ** (1/3))
    assert sum(len(tax.children(top)) for top in tax.children(ROOT)) == 4  # round(8 ** (2/3))
    distances = {(a, b): tax.product_distance(f"p{a}", f"p{b}") for a, b in [(0, 1), (0, 2), (0, 4), (6, 7)]}
    assert distances == {(0, 1): 0, (0, 2): 2, (0, 4): 4, (6, 7): 0}


def test_induced_clustering_sample_assigns_the_rest() -> None:
    products = [Product(id=f"p{i}", title=f"P{i}") for i in range(8)]
    tax = Taxonomy.induced(products, embeddings=_clustered_embeddings(), levels=1, sample_size=4, seed=3)
    assert len(tax.children(ROOT)) == 2  # round(4 ** (1/2)) clusters fitted on 4 products
    assert {tax.leaf_of(f"p{i}") for i in range(4)} != {tax.leaf_of(f"p{i}") for i in range(4, 8)}
    assert len({tax.leaf_of(f"p{i}") for i in range(4)}) == 1


def test_induced_needs_attributes_or_matching_embeddings() -> None:
    products = [Product(id="a", title="A"), Product(id="b", title="B")]
    with pytest.raises(TrainingError, match="neither was given"):
        Taxonomy.induced(products)
    with pytest.raises(TrainingError, match=r"shape \(3, 2\), expected \(2, dim\)"):
        Taxonomy.induced(products, embeddings=np.ones((3, 2)))
    with pytest.raises(TrainingError, match="levels=4"):
        Taxonomy.induced(products, embeddings=np.eye(2), levels=4)
