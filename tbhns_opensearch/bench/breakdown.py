"""Per-query scores grouped by a key (query class, top-level category, user-history bucket): mean and count.

Example:
    >>> breakdown({"q1": 1.0, "q2": 0.0, "q3": 0.5}, {"q1": "head", "q2": "head", "q3": "tail"})
    {'head': GroupStat(mean=0.5, count=2), 'tail': GroupStat(mean=0.5, count=1)}
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tbhns_opensearch.errors import BenchError
from tbhns_opensearch.eval.significance import PairedTest, adjust, paired_test

HISTORY_EDGES: tuple[int, ...] = (1, 5)
"""Default lower bounds of the user-history buckets after the first: "0", "1-4", "5+" (past interactions)."""


@dataclass(frozen=True)
class GroupStat:
    """Mean of one metric over the queries of one group, and how many queries that is."""

    mean: float
    count: int


def check_history_edges(edges: Sequence[int]) -> tuple[int, ...]:
    """`edges` as a tuple, if they are increasing whole numbers >= 1 (the first bucket starts at 0).

    Example:
        >>> check_history_edges([5, 20])
        (5, 20)
    """
    edges = tuple(edges)
    whole = all(isinstance(edge, int) and not isinstance(edge, bool) for edge in edges)
    if not edges or not whole or edges[0] < 1 or any(a >= b for a, b in zip(edges, edges[1:])):
        raise BenchError(
            f"history bucket edges must be increasing whole numbers >= 1 (the lower bound of each "
            f"bucket after the one from 0), got {list(edges)}; e.g. [5, 20] for 0-4, 5-19, 20+"
        )
    return edges


def history_bucket(length: int, edges: Sequence[int] = HISTORY_EDGES) -> str:
    """Bucket a user's history length (past interactions, or past orders) by `edges`, the lower bounds of the
    buckets after the one from 0 (see `check_history_edges`).

    Example:
        >>> [history_bucket(n) for n in (0, 1, 4, 5, 30)]
        ['0', '1-4', '1-4', '5+', '5+']
        >>> [history_bucket(n, (5, 20)) for n in (4, 5, 19, 20)]
        ['0-4', '5-19', '5-19', '20+']
    """
    if length < 0:
        raise BenchError(f"History length must be >= 0, got {length}.")
    lower = max((edge for edge in edges if edge <= length), default=0)
    upper = min((edge for edge in edges if edge > length), default=None)
    if upper is None:
        return f"{lower}+"
    return str(lower) if upper == lower + 1 else f"{lower}-{upper - 1}"


HISTORY_BUCKETS: tuple[str, ...] = tuple(history_bucket(n) for n in (0, *HISTORY_EDGES))
"""The default user-history buckets, in display order."""


def natural_key(group: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders the numbers in a label by value: "5-19" before "20+", "0" before "1-4".

    Example:
        >>> sorted(["20+", "5-19", "0-4"], key=natural_key)
        ['0-4', '5-19', '20+']
    """
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", group) if part)


def _by_group(item: tuple[str, object]) -> tuple[tuple[int, int | str], ...]:
    return natural_key(item[0])


def query_shape(text: str) -> str:
    """A query's shape: "with a number" when it holds a digit (a size, a gauge, a model number, where exact
    terms matter most), else "words only".

    Example:
        >>> query_shape("1/2 in. copper elbow"), query_shape("patio umbrella")
        ('with a number', 'words only')
    """
    return "with a number" if any(ch.isdigit() for ch in text) else "words only"


def breakdown(per_query: Mapping[str, float], groups: Mapping[str, str]) -> dict[str, GroupStat]:
    """Mean and count of `per_query` (qid -> score) per group (`groups`: qid -> group), groups sorted by name
    (numbers by value, `natural_key`).

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
        raise BenchError(
            f"No query of the {len(per_query)} scored has a group; check that `groups` is keyed "
            f"by the same query ids (e.g. {next(iter(per_query))!r})."
        )
    return {g: GroupStat(mean=sum(v) / len(v), count=len(v)) for g, v in sorted(members.items(), key=_by_group)}


def group_tests(
    per_query: Mapping[str, Mapping[str, float]],
    baseline: str,
    groups: Mapping[str, str],
    metric: str,
    method: str = "holm",
) -> dict[str, list[PairedTest]]:
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
        (
            group,
            paired_test(
                {q: per_query[baseline][q] for q in qids},
                {q: scores[q] for q in qids},
                metric=metric,
                baseline_name=baseline,
                system_name=name,
            ),
        )
        for group, qids in sorted(members.items(), key=_by_group)
        if len(qids) >= 2
        for name, scores in per_query.items()
        if name != baseline
    ]
    adjusted = adjust([test for _, test in keyed], method) if keyed else []
    tests: dict[str, list[PairedTest]] = {}
    for (group, _), test in zip(keyed, adjusted):
        tests.setdefault(group, []).append(test)
    return tests
