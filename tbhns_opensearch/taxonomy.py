"""Taxonomy: the category tree of a catalog, and the distances TB-HNS samples negatives by.

A node is identified by its path from the root (a tuple of category names); the root is `()`. Each product
sits at the node of its own `taxonomy_path` (its "leaf", even when other products sit deeper below it).
Products with an empty path sit under the explicit `UNKNOWN` node, a child of the root; they never serve as
taxonomy negatives.

Catalogs without a taxonomy (e.g. Icecat) get an induced one (`Taxonomy.induced`): from product-type
attributes when given, else from agglomerative clustering of product embeddings. `source` records which.

Example:
    >>> from tbhns_opensearch.catalog.product import Product
    >>> tax = Taxonomy.from_products([
    ...     Product(id="a", title="A", taxonomy_path=("Toys", "Puzzles", "Jigsaws")),
    ...     Product(id="b", title="B", taxonomy_path=("Toys", "Games")),
    ... ])
    >>> tax.lca(("Toys", "Puzzles", "Jigsaws"), ("Toys", "Games"))
    ('Toys',)
    >>> tax.product_distance("a", "b")
    3
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from tbhns_opensearch.catalog.product import Product
from tbhns_opensearch.errors import TrainingError

NodePath = tuple[str, ...]
ROOT: NodePath = ()
UNKNOWN: NodePath = ("<unknown>",)
TAXONOMY_SOURCES = ("catalog", "assigned", "induced:attribute", "induced:clustering")  # where the paths came from


@dataclass(frozen=True)
class Taxonomy:
    """A category tree over products.

    Args:
        paths: Product id -> node path (`UNKNOWN` for products without a category).
        source: "catalog", "assigned" (placed under a standard taxonomy), "induced:attribute" or
            "induced:clustering".

    Example:
        >>> tax = Taxonomy(paths={"a": ("Toys", "Games"), "b": UNKNOWN}, source="catalog")
        >>> tax.children(("Toys",)), tax.is_unknown("b")
        ((('Toys', 'Games'),), True)
    """

    paths: Mapping[str, NodePath]
    source: str = "catalog"
    _children: dict[NodePath, tuple[NodePath, ...]] = field(init=False, repr=False, compare=False)
    _direct: dict[NodePath, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    _subtree: dict[NodePath, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.source not in TAXONOMY_SOURCES:
            raise TrainingError(f"unknown taxonomy source {self.source!r}; use one of {', '.join(TAXONOMY_SOURCES)}")
        children: dict[NodePath, set[NodePath]] = defaultdict(set)
        direct: dict[NodePath, list[str]] = defaultdict(list)
        subtree: dict[NodePath, list[str]] = defaultdict(list)
        for product_id, path in self.paths.items():
            if not path:
                raise TrainingError(f"product {product_id!r} has an empty taxonomy path; map it to UNKNOWN")
            if path[0] == UNKNOWN[0] and path != UNKNOWN:
                raise TrainingError(
                    f"product {product_id!r} has path {path!r} under the reserved node {UNKNOWN[0]!r}; "
                    "rename that category or give the product an empty path"
                )
            direct[path].append(product_id)
            for depth in range(len(path) + 1):
                subtree[path[:depth]].append(product_id)
                if depth:
                    children[path[: depth - 1]].add(path[:depth])
        object.__setattr__(self, "_children", {node: tuple(sorted(kids)) for node, kids in children.items()})
        object.__setattr__(self, "_direct", {node: tuple(sorted(ids)) for node, ids in direct.items()})
        object.__setattr__(self, "_subtree", {node: tuple(sorted(ids)) for node, ids in subtree.items()})

    @classmethod
    def from_products(cls, products: Iterable[Product], source: str = "catalog") -> Taxonomy:
        """Build the tree from each product's `taxonomy_path` (any depth); empty paths go to `UNKNOWN`.

        `source` says where the paths came from: the catalog's own, or "assigned" (`taxonomy_assign`).
        """
        return cls(paths=_unique_paths((p.id, p.taxonomy_path or UNKNOWN) for p in products), source=source)

    @classmethod
    def induced(
        cls,
        products: Sequence[Product],
        *,
        attributes: str | Sequence[str] = (),
        embeddings: np.ndarray | None = None,
        levels: int = 2,
        sample_size: int = 5000,
        seed: int = 0,
    ) -> Taxonomy:
        """Induce a tree for a catalog without one.

        With `attributes` (a product-type attribute, or several from coarse to fine) the path is their values;
        a product missing the first one goes to `UNKNOWN`, and the path stops at the first missing one.
        Otherwise `embeddings` (shape (n_products, dim), aligned with `products`) are clustered with Ward
        linkage on unit vectors and the dendrogram is cut into `levels` nested levels of about
        n^(1/(levels+1)), n^(2/(levels+1)), ... clusters. Linkage needs O(n^2) memory, so at most
        `sample_size` products (a seeded sample) are clustered; the rest join the nearest finest cluster.

        Example:
            >>> ps = [Product(id="a", title="A", attributes={"type": "Laptop"}), Product(id="b", title="B")]
            >>> Taxonomy.induced(ps, attributes="type").paths
            {'a': ('Laptop',), 'b': ('<unknown>',)}
        """
        if attributes:
            names = (attributes,) if isinstance(attributes, str) else tuple(attributes)
            paths = ((p.id, _attribute_path(p, names)) for p in products)
            return cls(paths=_unique_paths(paths), source="induced:attribute")
        if embeddings is None:
            raise TrainingError(
                "Taxonomy.induced needs a product-type attribute name (attributes=...) or an embedding "
                "matrix aligned with the products (embeddings=...); neither was given"
            )
        clustered = _cluster_paths(np.asarray(embeddings, dtype=np.float64), len(products), levels, sample_size, seed)
        ids = (p.id for p in products)
        return cls(paths=_unique_paths(zip(ids, clustered, strict=True)), source="induced:clustering")

    @property
    def nodes(self) -> tuple[NodePath, ...]:
        """Every node, the root first, in sorted order."""
        return tuple(sorted(self._subtree))

    def __contains__(self, path: object) -> bool:
        return path in self._subtree

    def leaf_of(self, product_id: str) -> NodePath:
        """The node a product sits at."""
        try:
            return self.paths[product_id]
        except KeyError:
            raise TrainingError(
                f"product {product_id!r} is not in the taxonomy ({len(self.paths)} products); "
                "build the Taxonomy from the catalog that contains it"
            ) from None

    def is_unknown(self, product_id: str) -> bool:
        return self.leaf_of(product_id) == UNKNOWN

    def parent(self, path: NodePath) -> NodePath | None:
        """The parent node, or None for the root."""
        self._require(path)
        return path[:-1] if path else None

    def children(self, path: NodePath) -> tuple[NodePath, ...]:
        self._require(path)
        return self._children.get(path, ())

    def siblings(self, path: NodePath) -> tuple[NodePath, ...]:
        """The other children of the node's parent (none for the root)."""
        parent = self.parent(path)
        return () if parent is None else tuple(n for n in self._children[parent] if n != path)

    def depth(self, path: NodePath) -> int:
        """Edges from the root: the root is 0, a top-level category 1."""
        self._require(path)
        return len(path)

    def lca(self, a: NodePath, b: NodePath) -> NodePath:
        """Lowest common ancestor of two nodes (a node is its own ancestor)."""
        self._require(a)
        self._require(b)
        common = 0
        while common < min(len(a), len(b)) and a[common] == b[common]:
            common += 1
        return a[:common]

    def distance(self, a: NodePath, b: NodePath) -> int:
        """Edges on the tree path between two nodes: depth(a) + depth(b) - 2 * depth(lca)."""
        return len(a) + len(b) - 2 * len(self.lca(a, b))

    def product_distance(self, a: str, b: str) -> int:
        """Tree distance between the nodes two products sit at (0 for the same leaf)."""
        return self.distance(self.leaf_of(a), self.leaf_of(b))

    def products_at(self, path: NodePath) -> tuple[str, ...]:
        """Ids of the products sitting exactly at a node, sorted."""
        self._require(path)
        return self._direct.get(path, ())

    def products_under(self, path: NodePath) -> tuple[str, ...]:
        """Ids of the products at a node or anywhere below it, sorted."""
        self._require(path)
        return self._subtree[path]

    def _require(self, path: NodePath) -> None:
        if path not in self._subtree:
            top = ", ".join(repr(n[0]) for n in self._children.get(ROOT, ())[:10])
            raise TrainingError(
                f"taxonomy has no node {path!r}; a node is a tuple of names from the root, "
                f"and the top-level nodes are: {top}"
            )


def _unique_paths(pairs: Iterable[tuple[str, NodePath]]) -> dict[str, NodePath]:
    paths: dict[str, NodePath] = {}
    for product_id, path in pairs:
        if product_id in paths:
            raise TrainingError(f"product id {product_id!r} occurs twice; product ids must be unique")
        paths[product_id] = tuple(path)
    return paths


def _attribute_path(product: Product, names: tuple[str, ...]) -> NodePath:
    path: list[str] = []
    for name in names:
        value = str(product.attributes.get(name, "")).strip()
        if not value:
            break
        path.append(value)
    return tuple(path) or UNKNOWN


def _cluster_paths(embeddings: np.ndarray, n: int, levels: int, sample_size: int, seed: int) -> list[NodePath]:
    from scipy.cluster.hierarchy import fcluster, linkage

    if embeddings.ndim != 2 or embeddings.shape[0] != n:
        raise TrainingError(
            f"embeddings have shape {embeddings.shape}, expected ({n}, dim): one row per product, same order"
        )
    if n < 2:
        raise TrainingError(f"clustering needs at least 2 products, got {n}; use attributes=... instead")
    if not 1 <= levels <= 3:
        raise TrainingError(f"levels={levels} is out of range; an induced taxonomy has 1 to 3 levels")
    if sample_size < 2:
        raise TrainingError(f"sample_size={sample_size} is too small; cluster at least 2 products")
    unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)  # (n, dim)
    fit = np.arange(n)
    if n > sample_size:
        fit = np.sort(np.random.default_rng(seed).choice(n, size=sample_size, replace=False))
    tree = linkage(unit[fit], method="ward")
    counts = [min(len(fit), max(1, round(len(fit) ** (i / (levels + 1))))) for i in range(1, levels + 1)]
    labels = np.stack([fcluster(tree, t=k, criterion="maxclust") for k in counts], axis=1)  # (n_fit, levels)
    fit_paths = [tuple(f"c{level + 1}-{label}" for level, label in enumerate(row)) for row in labels]
    finest = sorted(set(fit_paths))
    position = {path: i for i, path in enumerate(finest)}
    leaf = np.empty(n, dtype=np.int64)  # (n,) index into finest
    leaf[fit] = [position[path] for path in fit_paths]
    rest = np.setdiff1d(np.arange(n), fit)
    if len(rest):
        centroids = np.stack([unit[fit][leaf[fit] == i].mean(axis=0) for i in range(len(finest))])
        leaf[rest] = np.argmax(unit[rest] @ centroids.T, axis=1)  # nearest finest cluster by cosine
    return [finest[i] for i in leaf]
