"""Training examples: the training split's labelled queries (`eval.queries`) -> (query, positive) pairs.

Example:
    >>> labels = [("lego duplo", "p1", 2), ("lego duplo", "p2", 1), ("kite", "p3", 2)]
    >>> js = [LabelledQuery(*label) for label in labels]
    >>> [(p.query, p.positive_id, sorted(p.relevant_ids)) for p in make_pairs(js, min_grade=2)]
    [('kite', 'p3', ['p3']), ('lego duplo', 'p1', ['p1', 'p2'])]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from tbhns_opensearch.errors import TrainingError
from tbhns_opensearch.eval.queries import LabelledQuery, query_key


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
