"""Rows for ROAR (`roar.ROARLoss`): one query with up to `size` products grouped by grade, padded.

Per training query (`graded_rows`): its judged products with their grades; when none is graded 0
(irrelevant), `unjudged` products nobody judged for it become the lowest group (grade 0): drawn at random
from the catalog, or from a `lowest` callable (the trainer's `lowest = "taxonomy"` passes stage 1's TB-HNS
sampler, so the bottom group is hard: the top product's leaf and siblings). Unjudged is not irrelevant, so
they are few and only ever the bottom group. A query needs two
grades to teach an order; one with a single grade and no room for unjudged products is skipped. When a query
has more than `size` products, slots go round-robin from the highest grade down, so every grade keeps a
member, then each grade's members are a seeded sample. Empty slots carry `PAD_GRADE` and an empty text.

Example:
    >>> from tbhns_opensearch.training.examples import LabelledQuery
    >>> rows = graded_rows([LabelledQuery("drill", "a", 2), LabelledQuery("drill", "b", 1)],
    ...                    {"a": "Cordless drill", "b": "Drill bits", "c": "Hose"}, size=4, unjudged=1, seed=0)
    >>> rows[0].texts, rows[0].grades
    (('Cordless drill', 'Drill bits', 'Hose', ''), (2.0, 1.0, 0.0, -100.0))
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tbhns_opensearch.catalog.judgments import graded_qrels
from tbhns_opensearch.errors import TrainingError
from tbhns_opensearch.eval.queries import LabelledQuery, query_key
from tbhns_opensearch.seeding import keyed_rng
from tbhns_opensearch.training.experimental.roar import PAD_GRADE

if TYPE_CHECKING:
    from datasets import Dataset


LowestGroup = Callable[[str, Mapping[str, int]], Sequence[str]]
"""(query, its judged products' grades) -> candidate unjudged product ids for the lowest group, in order."""


@dataclass(frozen=True)
class GradedRow:
    """One query and its products' texts and grades (`size` slots, padded with "" and `PAD_GRADE`)."""

    query: str
    texts: tuple[str, ...]
    grades: tuple[float, ...]


def graded_rows(
    judgments: Iterable[LabelledQuery],
    texts: Mapping[str, str],
    *,
    size: int = 8,
    unjudged: int = 2,
    seed: int = 0,
    lowest: LowestGroup | None = None,
) -> list[GradedRow]:
    """Build the rows (see the module docstring); `texts` maps every catalog product id to its text; `lowest`
    (default: a seeded random draw from the catalog) proposes the unjudged products of a query's lowest group."""
    if size < 2 or unjudged < 0:
        raise TrainingError(f"graded rows need size >= 2 and unjudged >= 0, got size={size}, unjudged={unjudged}")
    judgments = [j for j in judgments if j.product_id in texts]
    by_query = graded_qrels(judgments, key=query_key)
    shown: dict[str, str] = {}
    for j in judgments:
        shown.setdefault(query_key(j.query), j.query)
    catalog = sorted(texts)
    rows = []
    for key in sorted(by_query):
        grades = dict(by_query[key])
        rng = keyed_rng(seed, "graded", key)
        if 0 not in grades.values() and unjudged:
            pool = (
                lowest(shown[key], grades) if lowest else rng.sample(catalog, min(len(catalog), unjudged + len(grades)))
            )
            candidates = [pid for pid in pool if pid not in grades and pid in texts]
            grades.update({pid: 0 for pid in candidates[:unjudged]})
        chosen = _round_robin(grades, size, rng)
        if len({grade for _, grade in chosen}) < 2:
            continue
        padding = size - len(chosen)
        rows.append(
            GradedRow(
                shown[key],
                tuple(texts[pid] for pid, _ in chosen) + ("",) * padding,
                tuple(float(g) for _, g in chosen) + (PAD_GRADE,) * padding,
            )
        )
    return rows


def rows_dataset(rows: list[GradedRow]) -> Dataset:
    """A `datasets.Dataset` with columns query, product_0 .. product_{size-1} and label (the grades)."""
    from datasets import Dataset

    if not rows:
        raise TrainingError("no query has products of two grades; ROAR needs graded judgments (or unjudged > 0)")
    columns: dict[str, list] = {"query": [row.query for row in rows]}
    for slot in range(len(rows[0].texts)):
        columns[f"product_{slot}"] = [row.texts[slot] for row in rows]
    columns["label"] = [list(row.grades) for row in rows]
    return Dataset.from_dict(columns)


def _round_robin(grades: Mapping[str, int], size: int, rng: random.Random) -> list[tuple[str, int]]:
    groups: dict[int, list[str]] = defaultdict(list)
    for pid in sorted(grades):
        groups[grades[pid]].append(pid)
    for members in groups.values():
        rng.shuffle(members)
    order = sorted(groups, reverse=True)
    chosen: list[tuple[str, int]] = []
    while len(chosen) < size and any(groups[g] for g in order):
        for grade in order:
            if groups[grade] and len(chosen) < size:
                chosen.append((groups[grade].pop(), grade))
    return sorted(chosen, key=lambda item: -item[1])
