"""Which queries a benchmark evaluates: the split training held out, read from where training wrote it and
never recomputed with fractions of the benchmark's own.

A config that evaluates a split (`split = "validation"` or `"test"`) of its own labelled queries takes it from:

1. `split_file`: a `split.json` that `tbhns train` wrote beside its model (or that model's directory);
2. the model directory of each system that has one: the `split.json` in it;
3. `split_config`: a `tbhns train` config, for systems without a trained model: its run's split of these
   queries, made as `training.data.prepare_data` makes it (its seed and [data] validation and test, over the
   judgments of products in the catalog).

The first source selects the queries; every other one must put each of them in the same split, so no system
is scored on a query it was trained or tuned on. (`training_config` takes catalog, queries and split from a
training run instead; `BenchConfig`.)

Example:
    >>> source = SplitSource("split_file s.json", {query_digest("kite"): "test", query_digest("fan"): "train"})
    >>> [j.query for j in held_out([LabelledQuery("kite", "p1", 1), LabelledQuery("fan", "p2", 1)], "test", [source])]
    ['kite']
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tbhns_opensearch.errors import BenchError
from tbhns_opensearch.eval.queries import LabelledQuery, query_key
from tbhns_opensearch.eval.splits import (
    SPLIT_FILE,
    query_digest,
    read_split,
    select_split,
    split_assignment,
    split_by_query,
)

NO_SOURCE = (
    "split = {split!r} needs the split training held out, and no system's model directory holds a split.json: "
    'set split_config = "<the tbhns train config>" (or split_file = "<model dir>/split.json"), or split = "all"'
)


@dataclass(frozen=True)
class SplitSource:
    """A split as training made it: what messages call its source, and query digest -> train | validation | test."""

    name: str
    assignment: Mapping[str, str]


def model_split_files(systems: Iterable[tuple[str, str]]) -> dict[Path, str]:
    """The `split.json` in each (system name, encoder) whose encoder is a model directory holding one -> the
    first system that names it (systems sharing a model share its file)."""
    found: dict[Path, str] = {}
    for name, encoder in systems:
        path = Path(encoder) / SPLIT_FILE
        if encoder and path.is_file():
            found.setdefault(path, name)
    return found


def file_source(path: str | Path, name: str) -> SplitSource:
    """The split in `path`: a `split.json`, or the model directory holding one."""
    path = Path(path)
    return SplitSource(name, read_split(path / SPLIT_FILE if path.is_dir() else path))


def model_sources(systems: Iterable[tuple[str, str]]) -> list[SplitSource]:
    """One source per trained model among the (system name, encoder) pairs (`model_split_files`)."""
    return [file_source(path, f"system {name!r} ({path})") for path, name in model_split_files(systems).items()]


def config_source(
    path: str | Path, labelled: Sequence[LabelledQuery], product_ids: Collection[str], data: tuple[str, str, str]
) -> SplitSource:
    """The split that the `tbhns train` config at `path` makes of `labelled`: its seed and [data] fractions over
    the judgments of products in the catalog (`product_ids`), as `training.data.prepare_data` splits them.

    `data` is the benchmark's (catalog, queries, judgments); the training config must read the same ones.
    """
    from tbhns_opensearch.training.config import load_train_config

    train = load_train_config(path)
    theirs = train.data
    if theirs.queries in ("generated", "orders"):
        raise BenchError(
            f"split_config {path} makes its own queries (queries = {theirs.queries!r}); "
            f'set training_config = "{path}" to take catalog, queries and split from it'
        )
    catalog, queries, judgments = data
    same = (
        _same(theirs.dataset or theirs.catalog, catalog)
        and _same(theirs.queries, queries)
        and _same(theirs.judgments, judgments)
    )
    if not same:
        raise BenchError(
            f"split_config {path} splits other queries (catalog {theirs.dataset or theirs.catalog!r}, queries "
            f"{theirs.queries!r}, judgments {theirs.judgments!r}) than this config evaluates ({catalog!r}, "
            f"{queries!r}, {judgments!r}); name the training config of these queries"
        )
    known = set(product_ids)
    kept = [judgment for judgment in labelled if judgment.product_id in known]
    splits = split_by_query(kept, seed=train.seed, validation=theirs.validation, test=theirs.test)
    return SplitSource(f"split_config {path}", split_assignment(splits))


def held_out(labelled: Sequence[LabelledQuery], split: str, sources: Sequence[SplitSource]) -> list[LabelledQuery]:
    """The judgments of the queries the first source put in `split`, once every other source agrees
    (`check_agreement`); a BenchError with the fix when there is no source."""
    if not sources:
        raise BenchError(NO_SOURCE.format(split=split))
    first, *others = sources
    chosen = select_split(labelled, first.assignment, split)
    check_agreement([judgment.query for judgment in chosen], split, first.name, others)
    return chosen


def check_agreement(queries: Iterable[str], split: str, chosen_by: str, others: Iterable[SplitSource]) -> None:
    """Raise a BenchError when a source put one of `queries` (the `split` queries `chosen_by` selected) in
    another split: its model trained or was tuned on it. A query a source never saw is no conflict."""
    keys = sorted({query_key(query) for query in queries})
    for other in others:
        elsewhere = [key for key in keys if other.assignment.get(query_digest(key), split) != split]
        if elsewhere:
            raise BenchError(
                f"{other.name} puts {len(elsewhere)} of the {split} queries of {chosen_by} in another split "
                f"(e.g. {elsewhere[0]!r} in {other.assignment[query_digest(elsewhere[0])]}): its model was trained "
                "or tuned on them; benchmark the systems of each split in a config of their own"
            )


def _same(theirs: str, ours: str) -> bool:
    """Whether two config values name the same data: equal, or paths to the same file."""
    return theirs == ours or (bool(theirs) and bool(ours) and Path(theirs).resolve() == Path(ours).resolve())
