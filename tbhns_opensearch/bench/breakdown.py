"""Per-query scores grouped by a key (query class, top-level category, user-history bucket): mean and count.

Example:
    >>> breakdown({"q1": 1.0, "q2": 0.0, "q3": 0.5}, {"q1": "head", "q2": "head", "q3": "tail"})
    {'head': GroupStat(mean=0.5, count=2), 'tail': GroupStat(mean=0.5, count=1)}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tbhns_opensearch.eval.significance import PairedTest, adjust, paired_test
from tbhns_opensearch.errors import BenchError

HISTORY_BUCKETS: tuple[str, ...] = ("0", "1-4", "5+")
"""User-history buckets, in display order (number of past interactions)."""


@dataclass(frozen=True)
class GroupStat:
    """Mean of one metric over the queries of one group, and how many queries that is."""

    mean: float
    count: int


def history_bucket(n_interactions: int) -> str:
    """Bucket a user's history length: "0", "1-4" or "5+".

    Example:
        >>> [history_bucket(n) for n in (0, 1, 4, 5, 30)]
        ['0', '1-4', '1-4', '5+', '5+']
    """
    if n_interactions < 0:
        raise BenchError(f"History length must be >= 0, got {n_interactions}.")
    return "0" if n_interactions == 0 else "1-4" if n_interactions < 5 else "5+"


def query_shape(text: str) -> str:
    """A query's shape: "with a number" when it holds a digit (a size, a gauge, a model number, where exact
    terms matter most), else "words only".

    Example:
        >>> query_shape("1/2 in. copper elbow"), query_shape("patio umbrella")
        ('with a number', 'words only')
    """
    return "with a number" if any(ch.isdigit() for ch in text) else "words only"


def breakdown(per_query: Mapping[str, float], groups: Mapping[str, str]) -> dict[str, GroupStat]:
    """Mean and count of `per_query` (qid -> score) per group (`groups`: qid -> group), groups sorted by name.

    Queries without a group are left out; a group key is never invented.

    Args:
        per_query: qid -> metric value, e.g. `Evaluation.per_query["ndcg@10"]`.
        groups: qid -> group label.
    """
    members: dict[str, list[float]] = {}
    for qid, score in per_query.items():
        if qid in groups:
            members.setdefault(groups[qid], []).append(score)
    if per_query and not members:
        raise BenchError(f"No query of the {len(per_query)} scored has a group; check that `groups` is keyed "
                         f"by the same query ids (e.g. {next(iter(per_query))!r}).")
    return {g: GroupStat(mean=sum(v) / len(v), count=len(v)) for g, v in sorted(members.items())}


def group_tests(per_query: Mapping[str, Mapping[str, float]], baseline: str, groups: Mapping[str, str],
                metric: str, method: str = "holm") -> dict[str, list[PairedTest]]:
    """Per group: each system vs `baseline` on the group's queries (paired tests; groups with fewer than 2
    queries are left out), corrected with `method` over every test of the breakdown as one family.

    Args:
        per_query: system name -> {qid: score} of `metric`.
        baseline: Reference system name.
        groups: qid -> group label.
        metric: Label stored in the tests.
    """
    members: dict[str, list[str]] = {}
    for qid in per_query[baseline]:
        if qid in groups:
            members.setdefault(groups[qid], []).append(qid)
    keyed = [
        (group, paired_test({q: per_query[baseline][q] for q in qids}, {q: scores[q] for q in qids},
                            metric=metric, baseline_name=baseline, system_name=name))  # fmt: skip
        for group, qids in sorted(members.items()) if len(qids) >= 2
        for name, scores in per_query.items() if name != baseline
    ]
    adjusted = adjust([test for _, test in keyed], method) if keyed else []
    tests: dict[str, list[PairedTest]] = {}
    for (group, _), test in zip(keyed, adjusted):
        tests.setdefault(group, []).append(test)
    return tests
