"""Hard-negative samplers, looked up by name: random, taxonomy (TB-HNS), bm25, ance.

Every sampler maps a `TrainingPair` to a list of `Negative`s, each tagged with the level it came from, and
never returns a false negative: a product graded relevant for the query (`pair.relevant_ids`), the positive
itself, or a near-duplicate of the positive (same normalized title, or embedding cosine at or above a
threshold when embeddings are given; see `FalseNegativeFilter`). Each sampler keeps a `LevelLog` of what
it returned.

- `random`: no explicit negatives; training relies on in-batch negatives.
- `taxonomy`: TB-HNS. Negatives from the positive's leaf first, then its siblings (products under the
  parent but not the leaf), then cousins (under the grandparent but not the parent), `leaf`/`sibling`/
  `cousin` of each. A level's shortfall moves up to the next level; what the cousins cannot fill stays
  unfilled. The root is never a level (products sharing only the root are random, not hard), and products
  under the unknown node are never negatives (a positive there gets none). The draw is seeded by
  (seed, epoch, query, positive), so it is reproducible and rotates with the epoch.
- `bm25` / `ance`: the top non-relevant hits of an injected `search(query, k) -> ranked product ids`
  (BM25 on OpenSearch, or the current model's kNN, re-mined by the trainer).

Example:
    >>> from tbhns_opensearch.training.examples import TrainingPair
    >>> sampler = get_sampler("bm25", search=lambda q, k: ["p1", "p2", "p3"], count=1,
    ...                       false_negatives=FalseNegativeFilter.from_products([]))
    >>> sampler.sample(TrainingPair("kite", "p1", frozenset({"p1", "p2"}), "real"), seed=0, epoch=0)
    [Negative(product_id='p3', level='bm25')]
"""

from __future__ import annotations

import functools
import inspect
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from random import Random
from typing import Any, ClassVar

import numpy as np

from tbhns_opensearch.catalog.product import Product
from tbhns_opensearch.errors import TrainingError
from tbhns_opensearch.eval.queries import query_key
from tbhns_opensearch.seeding import keyed_rng
from tbhns_opensearch.taxonomy import UNKNOWN, NodePath, Taxonomy
from tbhns_opensearch.training.examples import TrainingPair

TAXONOMY_LEVELS = ("leaf", "sibling", "cousin")
Search = Callable[[str, int], list[str]]  # (query, k) -> product ids, best first


@dataclass(frozen=True)
class Negative:
    """A sampled negative and the level it came from: leaf, sibling, cousin, bm25 or ance."""

    product_id: str
    level: str


@dataclass(frozen=True)
class SampleRecord:
    """What a sampler returned for one pair: the level of each negative, and how many it asked for."""

    query: str
    positive_id: str
    levels: tuple[str, ...]
    requested: int


@dataclass
class LevelLog:
    """Negatives per level over every call, and the first `max_records` calls in full.

    Example:
        >>> log = LevelLog()
        >>> log.add(TrainingPair("q", "p", frozenset({"p"}), "real"), [Negative("n", "leaf")], requested=2)
        >>> log.counts, log.short
        (Counter({'leaf': 1}), 1)
    """

    max_records: int = 1000
    counts: Counter[str] = field(default_factory=Counter)
    records: list[SampleRecord] = field(default_factory=list)
    short: int = 0  # calls that returned fewer negatives than requested

    def add(self, pair: TrainingPair, negatives: Sequence[Negative], requested: int) -> None:
        levels = tuple(n.level for n in negatives)
        self.counts.update(levels)
        self.short += len(negatives) < requested
        if len(self.records) < self.max_records:
            self.records.append(SampleRecord(pair.query, pair.positive_id, levels, requested))

    def state_dict(self) -> dict[str, Any]:
        """The log as JSON values, for a checkpoint (`load_state_dict` reads it back)."""
        return {
            "counts": dict(self.counts),
            "short": self.short,
            "records": [[r.query, r.positive_id, list(r.levels), r.requested] for r in self.records],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replace the log with a checkpoint's (`state_dict`)."""
        self.counts = Counter(state["counts"])
        self.short = state["short"]
        self.records = [SampleRecord(query, pid, tuple(levels), n) for query, pid, levels, n in state["records"]]


@dataclass(frozen=True, eq=False)
class FalseNegativeFilter:
    """Rejects candidates that are likely relevant: labelled relevant, or a near-duplicate of the positive.

    Build it with `from_products`. Ids it does not know (e.g. a search hit outside the catalog) are checked
    against the labels only.
    """

    titles: dict[str, str]  # product id -> normalized title
    rows: dict[str, int]  # product id -> row of `unit`
    unit: np.ndarray | None  # (n_products, dim) unit vectors, or None
    cosine_threshold: float

    @classmethod
    def from_products(
        cls, products: Sequence[Product], embeddings: np.ndarray | None = None, cosine_threshold: float = 0.95
    ) -> FalseNegativeFilter:
        """Index titles (and embeddings, when given) for the near-duplicate checks.

        Args:
            products: The catalog.
            embeddings: Optional (n_products, dim) matrix aligned with `products`.
            cosine_threshold: Candidates at or above this cosine to the positive are near-duplicates.

        Example:
            >>> f = FalseNegativeFilter.from_products([Product("a", "Red Kite"), Product("b", "red  kite!")])
            >>> f.rejects(TrainingPair("kite", "a", frozenset({"a"}), "real"), "b")
            True
        """
        if not 0 < cosine_threshold <= 1:
            raise TrainingError(f"cosine_threshold={cosine_threshold} must be in (0, 1]; 0.95 is a usual value")
        unit = None
        if embeddings is not None:
            matrix = np.asarray(embeddings, dtype=np.float32)
            if matrix.ndim != 2 or matrix.shape[0] != len(products):
                raise TrainingError(
                    f"embeddings have shape {matrix.shape}, expected ({len(products)}, dim) aligned with products"
                )
            unit = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        return cls(
            titles={p.id: _normalize_title(p.title) for p in products},
            rows={p.id: i for i, p in enumerate(products)},
            unit=unit,
            cosine_threshold=cosine_threshold,
        )

    def rejects(self, pair: TrainingPair, candidate_id: str) -> bool:
        """True when the candidate must not be a negative for this pair."""
        if candidate_id == pair.positive_id or candidate_id in pair.relevant_ids:
            return True
        title = self.titles.get(candidate_id)
        if title is not None and title == self.titles.get(pair.positive_id):
            return True
        if self.unit is None or candidate_id not in self.rows or pair.positive_id not in self.rows:
            return False
        cosine = float(self.unit[self.rows[candidate_id]] @ self.unit[self.rows[pair.positive_id]])
        return cosine >= self.cosine_threshold


class NegativeSampler(ABC):
    """Maps a pair to negatives; `sample` also records them in `log`."""

    def __init__(self, log_records: int = 1000) -> None:
        self.log = LevelLog(max_records=log_records)

    @property
    @abstractmethod
    def requested(self) -> int:
        """How many negatives one call asks for."""

    def sample(self, pair: TrainingPair, *, seed: int, epoch: int) -> list[Negative]:
        """Negatives for one pair; the same (seed, epoch, pair) gives the same list."""
        negatives = self._draw(pair, seed=seed, epoch=epoch)
        self.log.add(pair, negatives, self.requested)
        return negatives

    @abstractmethod
    def _draw(self, pair: TrainingPair, *, seed: int, epoch: int) -> list[Negative]: ...


class RandomSampler(NegativeSampler):
    """No explicit negatives: the loss uses the other positives in the batch."""

    requested = 0

    def _draw(self, pair: TrainingPair, *, seed: int, epoch: int) -> list[Negative]:
        return []


class TaxonomySampler(NegativeSampler):
    """TB-HNS: negatives from the positive's leaf, siblings and cousins, with upward fallback.

    Args:
        taxonomy: The catalog's tree (real or induced).
        false_negatives: Filter for relevant products and near-duplicates.
        leaf: Negatives from the positive's own leaf (its subtree).
        sibling: Negatives under the parent but outside the leaf.
        cousin: Negatives under the grandparent but outside the parent.
        log_records: How many calls the `log` keeps in full.
    """

    def __init__(
        self,
        taxonomy: Taxonomy,
        false_negatives: FalseNegativeFilter,
        leaf: int = 2,
        sibling: int = 2,
        cousin: int = 1,
        log_records: int = 1000,
    ) -> None:
        super().__init__(log_records)
        self.counts = {"leaf": leaf, "sibling": sibling, "cousin": cousin}
        bad = {level: n for level, n in self.counts.items() if n < 0}
        if bad or not any(self.counts.values()):
            raise TrainingError(
                f"level counts {self.counts} must be >= 0 and not all 0; for no negatives use the random sampler"
            )
        self.taxonomy = taxonomy
        self.false_negatives = false_negatives

    @property
    def requested(self) -> int:
        return sum(self.counts.values())

    def _draw(self, pair: TrainingPair, *, seed: int, epoch: int) -> list[Negative]:
        node = self.taxonomy.leaf_of(pair.positive_id)
        if node == UNKNOWN:
            return []
        rng = keyed_rng(seed, epoch, query_key(pair.query), pair.positive_id)
        chosen: list[Negative] = []
        want = 0
        for steps, level in enumerate(TAXONOMY_LEVELS):
            want += self.counts[level]
            if steps >= len(node):  # the ancestor would be the root: no hard negatives there
                break
            ancestor = node[: len(node) - steps]
            inner = node[: len(ancestor) + 1] if steps else None  # the previous level's subtree
            keep = functools.partial(self._usable, pair, inner)
            picks = _draw_from(rng, self.taxonomy.products_under(ancestor), want, keep)
            chosen += [Negative(pid, level) for pid in picks]
            want -= len(picks)
        return chosen

    def _usable(self, pair: TrainingPair, inner: NodePath | None, product_id: str) -> bool:
        """Outside `inner` (already sampled as a lower level) and not a false negative."""
        if inner is not None and self.taxonomy.leaf_of(product_id)[: len(inner)] == inner:
            return False
        return not self.false_negatives.rejects(pair, product_id)


class RetrievalSampler(NegativeSampler):
    """The top `count` hits of `search(query, depth)` that are not false negatives.

    Args:
        search: (query, k) -> product ids, best first; cache it yourself if it is slow.
        false_negatives: Filter for relevant products and near-duplicates.
        count: Negatives per pair.
        depth: How many hits to ask for; raise it when many hits are relevant.
        log_records: How many calls the `log` keeps in full.
    """

    level: ClassVar[str]  # set by each registered subclass

    def __init__(
        self,
        search: Search,
        false_negatives: FalseNegativeFilter,
        count: int = 4,
        depth: int = 50,
        log_records: int = 1000,
    ) -> None:
        super().__init__(log_records)
        if not 1 <= count <= depth:
            raise TrainingError(f"count={count}, depth={depth}: need 1 <= count <= depth")
        self.search = search
        self.false_negatives = false_negatives
        self.count = count
        self.depth = depth

    @property
    def requested(self) -> int:
        return self.count

    def _draw(self, pair: TrainingPair, *, seed: int, epoch: int) -> list[Negative]:
        hits = dict.fromkeys(self.search(pair.query, self.depth))  # de-duplicated, rank order kept
        kept = [pid for pid in hits if not self.false_negatives.rejects(pair, pid)]
        return [Negative(pid, self.level) for pid in kept[: self.count]]


class BM25Sampler(RetrievalSampler):
    """Top non-relevant BM25 hits (`search` is wired to OpenSearch)."""

    level = "bm25"


class AnceSampler(RetrievalSampler):
    """Top non-relevant hits of the model being trained (ANCE); the trainer re-mines every N steps."""

    level = "ance"


SAMPLERS: dict[str, type[NegativeSampler]] = {
    "random": RandomSampler,
    "taxonomy": TaxonomySampler,
    "bm25": BM25Sampler,
    "ance": AnceSampler,
}


def get_sampler(name: str, **kwargs: Any) -> NegativeSampler:  # Any: each sampler takes its own arguments
    """Build the sampler registered under `name` with its keyword arguments.

    Example:
        >>> get_sampler("random").sample(TrainingPair("q", "p", frozenset({"p"}), "real"), seed=0, epoch=0)
        []
    """
    if name not in SAMPLERS:
        raise TrainingError(f"unknown negative sampler {name!r}; valid names: {', '.join(SAMPLERS)}")
    cls = SAMPLERS[name]
    try:
        inspect.signature(cls).bind(**kwargs)
    except TypeError as exc:
        raise TrainingError(
            f"sampler {name!r} takes {inspect.signature(cls)}; got arguments {sorted(kwargs)} ({exc})"
        ) from exc
    return cls(**kwargs)


def _draw_from(rng: Random, pool: Sequence[str], k: int, keep: Callable[[str], bool]) -> list[str]:
    """Up to `k` items of `pool` that pass `keep`, drawn uniformly without replacement.

    A lazy Fisher-Yates shuffle: each draw costs O(1), and the pool is never copied.
    """
    chosen: list[str] = []
    moved: dict[int, int] = {}  # position -> pool index swapped into it
    for position in range(len(pool)):
        if len(chosen) >= k:
            break
        target = rng.randrange(position, len(pool))
        index = moved.get(target, target)
        moved[target] = moved.get(position, position)
        if keep(pool[index]):
            chosen.append(pool[index])
    return chosen


def _normalize_title(title: str) -> str:
    return " ".join("".join(c if c.isalnum() else " " for c in title.lower()).split())
