"""Training examples: labelled queries -> (query, positive) pairs, split by query.

A `LabelledQuery` is a graded (query, product) judgment (`catalog.judgments.Judgment`) tagged "real" (from
a dataset) or "generated" (`querygen`). Splits are made on labelled queries, by query, so the test split
keeps every grade for evaluation and no query appears in two splits; `make_pairs` then turns a split into
training pairs. Queries are grouped by `query_key`
(lowercased, whitespace collapsed), so "LEGO  Duplo" and "lego duplo" are one query.

Example:
    >>> labels = [("lego duplo", "p1", 2), ("lego duplo", "p2", 1), ("kite", "p3", 2)]
    >>> js = [LabelledQuery(*label) for label in labels]
    >>> [(p.query, p.positive_id, sorted(p.relevant_ids)) for p in make_pairs(js, min_grade=2)]
    [('kite', 'p3', ['p3']), ('lego duplo', 'p1', ['p1', 'p2'])]
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from tbhns_opensearch.catalog.judgments import Judgment
from tbhns_opensearch.errors import TrainingError
from tbhns_opensearch.seeding import keyed_rng

SOURCES = ("real", "generated")


@dataclass(frozen=True)
class LabelledQuery(Judgment):
    """A judgment that knows where it came from: "real" (a dataset) or "generated" (`querygen`).

    Args:
        query: The shopper's query text.
        product_id: The judged product.
        grade: 0 (irrelevant) or higher (more relevant); WANDS uses 0/1/2.
        source: "real" or "generated".

    Example:
        >>> LabelledQuery.from_judgment(Judgment("usb cable", "p1", 2))
        LabelledQuery(query='usb cable', product_id='p1', grade=2, source='real')
    """

    source: str = "real"

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise TrainingError(f"judgment source {self.source!r} is unknown; use one of {', '.join(SOURCES)}")
        if not query_key(self.query):
            raise TrainingError(f"judgment for product {self.product_id!r} has an empty query; drop it")
        if isinstance(self.grade, bool) or not isinstance(self.grade, int) or self.grade < 0:
            raise TrainingError(f"grade {self.grade!r} for query {self.query!r} must be an integer >= 0")

    @classmethod
    def from_judgment(cls, judgment: Judgment, source: str = "real") -> LabelledQuery:
        """Tag a judgment read from a catalog (`catalog.judgments`) with its source."""
        return cls(judgment.query, judgment.product_id, judgment.grade, source)


@dataclass(frozen=True)
class TrainingPair:
    """A (query, positive) training example.

    Args:
        query: The query text.
        positive_id: A product graded >= the pair threshold for the query.
        relevant_ids: Every product graded > 0 for the query; negative samplers never return these.
        source: "real" or "generated", from the judgment.
    """

    query: str
    positive_id: str
    relevant_ids: frozenset[str]
    source: str


@dataclass(frozen=True)
class Splits:
    """Labelled queries split by query: no query is in two splits; `test` is held out."""

    train: tuple[LabelledQuery, ...]
    validation: tuple[LabelledQuery, ...]
    test: tuple[LabelledQuery, ...]


def query_key(query: str) -> str:
    """The grouping key of a query: lowercased, whitespace collapsed.

    Example:
        >>> query_key("  LEGO   Duplo ")
        'lego duplo'
    """
    return " ".join(query.lower().split())


def make_pairs(judgments: Iterable[LabelledQuery], *, min_grade: int = 2) -> list[TrainingPair]:
    """One pair per (query, product) graded >= `min_grade`, sorted by query key then product id.

    Args:
        judgments: Labels, real and/or generated; duplicates keep the highest grade (real before generated).
        min_grade: Lowest grade that counts as a positive (>= 1).
    """
    if min_grade < 1:
        raise TrainingError(f"min_grade={min_grade} would make irrelevant products positives; use 1 or more")
    best: dict[tuple[str, str], LabelledQuery] = {}
    for judgment in judgments:
        slot = (query_key(judgment.query), judgment.product_id)
        kept = best.get(slot)
        if kept is None or (judgment.grade, judgment.source == "real") > (kept.grade, kept.source == "real"):
            best[slot] = judgment
    relevant: dict[str, set[str]] = defaultdict(set)
    for (key, product_id), judgment in best.items():
        if judgment.grade > 0:
            relevant[key].add(product_id)
    return [
        TrainingPair(j.query, j.product_id, frozenset(relevant[key]), j.source)
        for (key, _), j in sorted(best.items())
        if j.grade >= min_grade
    ]


def split_by_query(
    judgments: Sequence[LabelledQuery], *, seed: int, validation: float = 0.1, test: float = 0.1
) -> Splits:
    """Split judgments by query key into train / validation / test, deterministically for a seed.

    Each non-zero fraction gets at least one query; the order of `judgments` does not change the split.

    Example:
        >>> js = [LabelledQuery(f"q{i}", "p", 2) for i in range(10)]
        >>> s = split_by_query(js, seed=0)
        >>> len(s.train), len(s.validation), len(s.test)
        (8, 1, 1)
    """
    for name, fraction in (("validation", validation), ("test", test)):
        if not 0 <= fraction < 1:
            raise TrainingError(f"{name}={fraction} must be a fraction in [0, 1)")
    keys = sorted({query_key(j.query) for j in judgments})
    n_test, n_validation = (max(1, round(len(keys) * f)) if f else 0 for f in (test, validation))
    if n_test + n_validation >= len(keys):
        raise TrainingError(
            f"{len(keys)} distinct queries cannot fill test={test} and validation={validation} and leave "
            "queries for training; add queries or lower the fractions"
        )
    keyed_rng(seed, "split").shuffle(keys)
    split_of = {key: "test" if i < n_test else "validation" if i < n_test + n_validation else "train"
                for i, key in enumerate(keys)}
    parts: dict[str, list[LabelledQuery]] = {"train": [], "validation": [], "test": []}
    for judgment in judgments:
        parts[split_of[query_key(judgment.query)]].append(judgment)
    return Splits(**{name: tuple(part) for name, part in parts.items()})


def write_labelled_queries(path: str | Path, judgments: Iterable[LabelledQuery]) -> None:
    """Write labelled queries as JSONL, one object per line."""
    with Path(path).open("w", encoding="utf-8") as handle:
        for judgment in judgments:
            handle.write(json.dumps(asdict(judgment), ensure_ascii=False) + "\n")


def read_labelled_queries(path: str | Path) -> list[LabelledQuery]:
    """Read labelled queries written by `write_labelled_queries`."""
    judgments: list[LabelledQuery] = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                judgments.append(LabelledQuery(**json.loads(line)))
            except (json.JSONDecodeError, TypeError) as exc:
                raise TrainingError(
                    f"{path}:{number} is not a labelled query ({exc}); "
                    "each line needs query, product_id, grade and source"
                ) from exc
    return judgments
