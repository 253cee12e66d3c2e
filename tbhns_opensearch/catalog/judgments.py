"""Graded relevance judgments (query, product, grade) and their CSV artifact.

The artifact keeps the Chorus/Icecat layout `query,docid,rating`, so the Icecat file is read as is.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from tbhns_opensearch.errors import CatalogError
from tbhns_opensearch.textfiles import csv_rows, path_problem

JUDGMENT_COLUMNS = ("query", "docid", "rating")


@dataclass(frozen=True)
class Judgment:
    """How relevant one product is to one query; 0 is irrelevant, higher is better.

    Example:
        >>> Judgment("usb cable", "p1", 3).grade
        3
    """

    query: str
    product_id: str
    grade: int


def read_judgments_csv(path: str | Path) -> list[Judgment]:
    """Read `query,docid,rating` rows; any bad row is an error naming its line.

    Example:
        >>> read_judgments_csv("tests/fixtures/icecat_judgments.csv")[0].grade  # doctest: +SKIP
        3
    """
    path = Path(path)
    if problem := path_problem(path):
        raise CatalogError(
            f"judgments file {str(path)!r} {problem}; pass a CSV with columns {','.join(JUDGMENT_COLUMNS)}"
        )
    fix = f"judgments need the columns {','.join(JUDGMENT_COLUMNS)}"
    return [_judgment(row, path, line) for line, row in csv_rows(path, CatalogError, JUDGMENT_COLUMNS, fix)]


def graded_qrels(judgments: Iterable[Judgment], key: Callable[[str], str] = str) -> dict[str, dict[str, int]]:
    """Grades by query (`key(query)`, the text itself by default) and product; a pair judged twice keeps its
    highest grade.

    Example:
        >>> graded_qrels([Judgment("usb", "p1", 1), Judgment("USB", "p1", 3)], key=str.lower)
        {'usb': {'p1': 3}}
    """
    qrels: dict[str, dict[str, int]] = {}
    for judgment in judgments:
        grades = qrels.setdefault(key(judgment.query), {})
        grades[judgment.product_id] = max(judgment.grade, grades.get(judgment.product_id, 0))
    return qrels


def write_judgments_csv(judgments: Iterable[Judgment], path: str | Path) -> int:
    """Write judgments as `query,docid,rating`; returns how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(JUDGMENT_COLUMNS)
        for judgment in judgments:
            writer.writerow((judgment.query, judgment.product_id, judgment.grade))
            count += 1
    return count


def parse_grade(value: str, where: str) -> int:
    """A non-negative integer grade, or an error naming `where` (file:line).

    Example:
        >>> parse_grade("2", "j.csv:3")
        2
    """
    try:
        grade = int(value)
    except (TypeError, ValueError):
        grade = -1
    if grade < 0:
        raise CatalogError(
            f"{where}: grade {value!r} is not a non-negative integer; use 0 (irrelevant) up to the set's highest grade"
        )
    return grade


def _judgment(row: dict[str, str], path: Path, line: int) -> Judgment:
    query, docid = (row["query"] or "").strip(), (row["docid"] or "").strip()
    if not query or not docid:
        raise CatalogError(f"{path}:{line}: empty query or docid in {row}; every judgment needs both")
    return Judgment(query, docid, parse_grade(row["rating"], f"{path}:{line}"))
