"""Place each product of a catalog without categories under a node of a standard taxonomy (zero-shot).

A taxonomy file holds one category per line, either Google's merchant layout `ID - A > B > C` or a plain
path `A > B > C`; `#` lines are comments. Every line is a node; a node's parents need not be listed.

Assignment (`assign_products`) descends the tree level by level. A node's score for a product is the best
cosine between the product's vector and the full path text of any node in the node's subtree
("Home & Garden > Lighting > Light Bulbs > LED Light Bulbs" speaks for "Home & Garden"). At each node the
children's scores become probabilities with a softmax at `temperature`, and the product moves to the best
child while its probability is at least `min_confidence`. A product whose first step is below it gets no
path (the explicit unknown node). Its confidence is the lowest probability along its path (the weakest step).

Why this: it needs no labels, any taxonomy file works, every step is checked rather than only the leaf, and
stopping early keeps an uncertain product at the general node it is sure of. Scoring a node by its subtree
matters: bare top-level names ("Furniture", "Hardware") say little, and scoring them by their own text put a
third of Home Depot's products under "Furniture"; full path texts give short, ambiguous names ("Hooks",
"Bits") their context. Defaults (temperature 0.02, min_confidence 0.5) were chosen by reading Home Depot
assignments and checked on the catalogs that have their own categories (`benchmarks/taxonomy_assignment.py`).

Example:
    >>> tree = CategoryTree.parse(["1 - Tools", "2 - Tools > Drills", "3 - Toys"])
    >>> tree.children(("Tools",))
    (('Tools', 'Drills'),)
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from tbhns_opensearch.catalog.adapters import data_root
from tbhns_opensearch.catalog.product import Product
from tbhns_opensearch.errors import CatalogError
from tbhns_opensearch.textfiles import path_problem, text_file

NodePath = tuple[str, ...]
PATH_SEPARATOR = " > "
GOOGLE_LINE = re.compile(r"^\s*\d+\s+-\s+(.*)$")
GOOGLE_TAXONOMY = ("google-product-taxonomy", "taxonomy-with-ids.en-US.txt")  # folder under the data dir, file


@dataclass(frozen=True)
class CategoryTree:
    """The nodes of a taxonomy file, parents included, in file order.

    Args:
        nodes: Every node's path from the root.
    """

    nodes: tuple[NodePath, ...]
    _children: dict[NodePath, tuple[NodePath, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        children: dict[NodePath, list[NodePath]] = defaultdict(list)
        known = set(self.nodes)
        for node in self.nodes:
            if node[:-1] and node[:-1] not in known:
                raise CatalogError(
                    f"taxonomy node {PATH_SEPARATOR.join(node)!r} has no parent line; list "
                    f"{PATH_SEPARATOR.join(node[:-1])!r} too"
                )
            children[node[:-1]].append(node)
        object.__setattr__(self, "_children", {k: tuple(v) for k, v in children.items()})

    @classmethod
    def parse(cls, lines: Iterable[str], source: str = "<lines>") -> CategoryTree:
        """Read `ID - A > B` or `A > B` lines; missing parents are added before their first child.

        Example:
            >>> CategoryTree.parse(["A > B"]).nodes
            (('A',), ('A', 'B'))
        """
        nodes: dict[NodePath, None] = {}
        for number, line in enumerate(lines, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            match = GOOGLE_LINE.match(text)
            path = tuple(part.strip() for part in (match.group(1) if match else text).split(PATH_SEPARATOR.strip()))
            if not all(path):
                raise CatalogError(f"{source}:{number}: empty category name in {text!r}; write `A > B > C`")
            for depth in range(1, len(path) + 1):
                nodes.setdefault(path[:depth])
        if not nodes:
            raise CatalogError(f"{source}: no categories; one per line, `ID - A > B > C` or `A > B > C`")
        return cls(tuple(nodes))

    @classmethod
    def read(cls, path: str | Path | None = None) -> CategoryTree:
        """Read a taxonomy file (default: Google's, under the data folder `catalog.adapters.data_root()`)."""
        path = Path(path) if path else data_root().joinpath(*GOOGLE_TAXONOMY)
        if problem := path_problem(path):
            raise CatalogError(
                f"taxonomy file {str(path)!r} {problem}; pass Google's "
                "taxonomy-with-ids.en-US.txt or a file of `A > B > C` lines"
            )
        with text_file(path, CatalogError, lambda: 0):
            return cls.parse(path.read_text(encoding="utf-8").splitlines(), str(path))

    def children(self, node: NodePath) -> tuple[NodePath, ...]:
        return self._children.get(node, ())

    def texts(self) -> list[str]:
        """Each node's full path text, the string its vector is encoded from."""
        return [PATH_SEPARATOR.join(node) for node in self.nodes]


@dataclass(frozen=True)
class Assignment:
    """Where one product was placed: `path` is empty (unknown) when even the first step was unsure."""

    product_id: str
    path: NodePath
    confidence: float


def assign_products(
    product_ids: Sequence[str],
    product_vectors: np.ndarray,
    tree: CategoryTree,
    node_vectors: np.ndarray,
    *,
    min_confidence: float = 0.5,
    temperature: float = 0.02,
) -> list[Assignment]:
    """Descend `tree` for every product (see the module docstring).

    Args:
        product_ids: One id per row of `product_vectors`.
        product_vectors: (n, dim) unit vectors of the products.
        tree: The taxonomy.
        node_vectors: (len(tree.nodes), dim) unit vectors of `tree.texts()`.
        min_confidence: Lowest softmax probability of a step; below it the product stays where it is.
        temperature: Softmax temperature over a node's children's cosines.

    Example:
        >>> tree = CategoryTree.parse(["A", "A > B", "C"])
        >>> nodes = np.array([[1, 0], [0.9, 0.44], [0, 1]], dtype=np.float32)
        >>> assign_products(["p"], np.array([[0.8, 0.6]], dtype=np.float32), tree, nodes)[0].path
        ('A', 'B')
    """
    if not 0 < min_confidence <= 1 or temperature <= 0:
        raise CatalogError(f"need 0 < min_confidence <= 1 and temperature > 0, got {min_confidence}, {temperature}")
    row_of = {node: row for row, node in enumerate(tree.nodes)}
    upward = [(row_of[node], row_of[node[:-1]]) for node in reversed(tree.nodes) if len(node) > 1]  # deepest first
    assignments = []
    for start in range(0, len(product_ids), 2048):
        scores = product_vectors[start : start + 2048] @ node_vectors.T  # (chunk, n_nodes)
        for child, parent in upward:  # a node's score becomes its subtree's best
            np.maximum(scores[:, parent], scores[:, child], out=scores[:, parent])
        for offset, row_scores in enumerate(scores):
            node: NodePath = ()
            confidence = 1.0
            while kids := tree.children(node):
                logits = row_scores[[row_of[kid] for kid in kids]] / temperature
                probabilities = np.exp(logits - logits.max())
                probabilities /= probabilities.sum()
                best = int(probabilities.argmax())
                if probabilities[best] < min_confidence:
                    break
                node, confidence = kids[best], min(confidence, float(probabilities[best]))
            assignments.append(Assignment(product_ids[start + offset], node, confidence if node else 0.0))
    return assignments


def write_assignments(assignments: Iterable[Assignment], path: str | Path) -> int:
    """Write one JSON line per product: `{"id", "taxonomy_path", "confidence"}`; returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for a in assignments:
            handle.write(
                json.dumps({"id": a.product_id, "taxonomy_path": list(a.path), "confidence": round(a.confidence, 4)})
                + "\n"
            )
            count += 1
    return count


def read_assignments(path: str | Path) -> dict[str, NodePath]:
    """Product id -> assigned path (empty: unknown) from a file `write_assignments` wrote."""
    path = Path(path)
    if problem := path_problem(path):
        raise CatalogError(
            f"taxonomy assignments {str(path)!r} {problem}; write them with "
            "`tbhns taxonomy assign --dataset NAME --out FILE`"
        )
    paths, number = {}, 0
    with path.open(encoding="utf-8") as handle, text_file(path, CatalogError, lambda: number):
        for number, line in enumerate(handle, start=1):
            try:
                record = json.loads(line)
                paths[str(record["id"])] = tuple(record["taxonomy_path"])
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise CatalogError(
                    f"{path}:{number}: not an assignment line ({exc}); expected "
                    '{"id": ..., "taxonomy_path": [...]}; write the file again'
                ) from exc
    return paths


def with_assigned_paths(products: Iterable[Product], paths: Mapping[str, NodePath]) -> list[Product]:
    """The products with their assigned taxonomy paths (products not in `paths` keep their own).

    Example:
        >>> with_assigned_paths([Product("a", "Drill")], {"a": ("Tools", "Drills")})[0].taxonomy_path
        ('Tools', 'Drills')
    """
    return [replace(p, taxonomy_path=paths[p.id]) if p.id in paths else p for p in products]
