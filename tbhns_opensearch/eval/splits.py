"""Splits by query: train / validation / test, deterministic for a seed, so no query is in two splits and the
test split keeps every grade. `tbhns train` writes the split it made (`write_split`) beside the model, and
`tbhns bench` evaluates exactly that split (`read_split`), so the two can never drift apart."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tbhns_opensearch.errors import EvaluationError
from tbhns_opensearch.eval.queries import LabelledQuery, query_key
from tbhns_opensearch.seeding import keyed_rng

SPLIT_FILE = "split.json"


@dataclass(frozen=True)
class Splits:
    """Labelled queries split by query: no query is in two splits; `test` is held out."""

    train: tuple[LabelledQuery, ...]
    validation: tuple[LabelledQuery, ...]
    test: tuple[LabelledQuery, ...]


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
            raise EvaluationError(f"{name}={fraction} must be a fraction in [0, 1)")
    keys = sorted({query_key(j.query) for j in judgments})
    n_test, n_validation = (max(1, round(len(keys) * f)) if f else 0 for f in (test, validation))
    if n_test + n_validation >= len(keys):
        raise EvaluationError(
            f"{len(keys)} distinct queries cannot fill test={test} and validation={validation} and leave "
            "queries for training; add queries or lower the fractions"
        )
    keyed_rng(seed, "split").shuffle(keys)
    split_of = {
        key: "test" if i < n_test else "validation" if i < n_test + n_validation else "train"
        for i, key in enumerate(keys)
    }
    parts: dict[str, list[LabelledQuery]] = {"train": [], "validation": [], "test": []}
    for judgment in judgments:
        parts[split_of[query_key(judgment.query)]].append(judgment)
    return Splits(**{name: tuple(part) for name, part in parts.items()})


def split_assignment(splits: Splits) -> dict[str, str]:
    """Which split each query went to, keyed by `query_digest` (the file never holds query texts).

    Example:
        >>> s = split_by_query([LabelledQuery(f"q{i}", "p", 2) for i in range(10)], seed=0)
        >>> sorted(split_assignment(s).values()).count("train")
        8
    """
    return {query_digest(j.query): name for name in ("train", "validation", "test") for j in getattr(splits, name)}


def query_digest(query: str) -> str:
    """A short digest of the query's `query_key`: the split file's key.

    Example:
        >>> query_digest("LEGO  Duplo") == query_digest("lego duplo")
        True
    """
    return hashlib.sha1(query_key(query).encode()).hexdigest()[:16]


def write_split(directory: str | Path, assignment: Mapping[str, str]) -> Path:
    """Write `<directory>/split.json`: query digest -> train | validation | test."""
    path = Path(directory) / SPLIT_FILE
    path.write_text(json.dumps({"queries": dict(sorted(assignment.items()))}, indent=0) + "\n")
    return path


def read_split(path: str | Path) -> dict[str, str]:
    """Read a `split.json` written by `write_split` (by `tbhns train`, beside its model)."""
    try:
        queries = json.loads(Path(path).read_text())["queries"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EvaluationError(
            f"{path} is not a split file ({exc}); point split_file at the split.json that "
            "`tbhns train` wrote beside its model"
        ) from exc
    return {str(key): str(value) for key, value in queries.items()}


def select_split(judgments: Sequence[LabelledQuery], assignment: Mapping[str, str], name: str) -> list[LabelledQuery]:
    """The judgments of the queries that `assignment` put in split `name` (others, e.g. new queries, are left out).

    Example:
        >>> js = [LabelledQuery(f"q{i}", "p", 2) for i in range(10)]
        >>> s = split_by_query(js, seed=0)
        >>> select_split(js, split_assignment(s), "test") == list(s.test)
        True
    """
    chosen = [j for j in judgments if assignment.get(query_digest(j.query)) == name]
    if not chosen:
        raise EvaluationError(
            f"no query of the {len(judgments)} judgments is in the {name!r} split of the split file; "
            "check that the file was written for these queries"
        )
    return chosen
