"""TREC run and qrels files, and the ranked run a benchmark system produces.

Formats (whitespace-separated, one line per judged or retrieved document):

- run:   ``qid Q0 docid rank score run_name``
- qrels: ``qid 0 docid grade``

A run is ranked by score, descending; ties are broken by docid, ascending. The same order is used when
writing a file and when evaluating (`metrics`), so a run always ranks the same way; the rank column of a
file that is read is checked but not used, as in trec_eval.

Example:
    >>> run = {"q1": {"d1": 2.0, "d2": 3.5}}
    >>> ranking(run["q1"])
    [('d2', 3.5), ('d1', 2.0)]
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TypeVar

from tbhns_opensearch.errors import EvaluationError

_T = TypeVar("_T")

Run = dict[str, dict[str, float]]
"""qid -> {docid: score}."""

Qrels = dict[str, dict[str, int]]
"""qid -> {docid: grade}; grade 0 means judged not relevant."""


class DataSource(str, Enum):
    """Where a system's queries came from; every report states it."""

    REAL = "real"  # logged or published queries (e.g. WANDS, a shop's search log)
    GENERATED = "generated"  # written by a model or template from the catalog
    SIMULATED = "simulated"  # synthetic users, histories or traffic

    @classmethod
    def parse(cls, value: DataSource | str) -> DataSource:
        """Return the member for `value` ("real", "generated" or "simulated").

        Example:
            >>> DataSource.parse("generated")
            <DataSource.GENERATED: 'generated'>
        """
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(m.value for m in cls)
            raise EvaluationError(f"Unknown data source {value!r}; use one of: {valid}.") from None


@dataclass(frozen=True)
class RankedRun:
    """One system's ranked results with what a report needs to label them.

    Args:
        name: Run name, written in the last TREC column (no whitespace), e.g. "bm25" or "knn-tbhns".
        run: qid -> {docid: score}.
        mode: Retrieval mode, e.g. "bm25", "knn", "hybrid".
        source: Where the queries came from: "real", "generated" or "simulated".
        encoder: Encoder name or model directory; empty for lexical runs.
        metadata: Free-form strings (index name, k, fusion method ...).

    Example:
        >>> RankedRun("bm25", {"q1": {"d1": 1.0}}, mode="bm25", source="real").source
        <DataSource.REAL: 'real'>
    """

    name: str
    run: Run
    mode: str
    source: DataSource
    encoder: str = ""
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or any(c.isspace() for c in self.name):
            raise EvaluationError(f"Run name must be non-empty without whitespace, got {self.name!r}.")
        if not self.mode:
            raise EvaluationError(f"Run {self.name!r} needs a mode (e.g. 'bm25', 'knn', 'hybrid').")
        object.__setattr__(self, "source", DataSource.parse(self.source))


def ranking(docs: Mapping[str, float], depth: int | None = None) -> list[tuple[str, float]]:
    """Rank one query's documents: score descending, then docid ascending; keep the first `depth`.

    Example:
        >>> ranking({"b": 1.0, "a": 1.0, "c": 2.0}, depth=2)
        [('c', 2.0), ('a', 1.0)]
    """
    ranked = sorted(docs.items(), key=lambda item: (-item[1], item[0]))
    return ranked if depth is None else ranked[:depth]


def write_run(path: str | Path, run: Mapping[str, Mapping[str, float]], name: str, depth: int | None = None) -> None:
    """Write `run` as a TREC run file, queries in sorted order, each ranked by `ranking`.

    Args:
        path: File to write.
        run: qid -> {docid: score}.
        name: Run name for the last column (no whitespace).
        depth: Keep at most this many documents per query; None keeps all.

    Example:
        >>> write_run("bm25.trec", {"q1": {"d1": 2.0}}, "bm25")  # doctest: +SKIP
        # file: "q1 Q0 d1 1 2.0 bm25"
    """
    if not name or any(c.isspace() for c in name):
        raise EvaluationError(f"Run name must be non-empty without whitespace, got {name!r}.")
    _check_ids(run)
    lines = [
        f"{qid} Q0 {docid} {rank} {float(score)!r} {name}"
        for qid in sorted(run)
        for rank, (docid, score) in enumerate(ranking(run[qid], depth), start=1)
    ]
    Path(path).write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def read_run(path: str | Path) -> Run:
    """Read a TREC run file into qid -> {docid: score}.

    Example:
        >>> read_run("bm25.trec")  # doctest: +SKIP
        {'q1': {'d1': 2.0}}
    """
    run: Run = {}
    for lineno, fields in _records(path, 6, "qid Q0 docid rank score run_name"):
        qid, _, docid, rank, score, _ = fields
        _number(int, rank, path, lineno, "rank")
        docs = run.setdefault(qid, {})
        if docid in docs:
            raise EvaluationError(
                f"{path}:{lineno}: document {docid!r} appears twice for query {qid!r}; deduplicate the run."
            )
        docs[docid] = _number(float, score, path, lineno, "score")
    return run


def write_qrels(path: str | Path, qrels: Mapping[str, Mapping[str, int]]) -> None:
    """Write `qrels` as a TREC qrels file (`qid 0 docid grade`), sorted by qid then docid.

    Example:
        >>> write_qrels("wands.qrels", {"q1": {"d1": 2, "d2": 0}})  # doctest: +SKIP
    """
    _check_ids(qrels)
    lines = [f"{qid} 0 {docid} {int(qrels[qid][docid])}" for qid in sorted(qrels) for docid in sorted(qrels[qid])]
    Path(path).write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def read_qrels(path: str | Path) -> Qrels:
    """Read a TREC qrels file into qid -> {docid: grade}.

    Example:
        >>> read_qrels("wands.qrels")  # doctest: +SKIP
        {'q1': {'d1': 2, 'd2': 0}}
    """
    qrels: Qrels = {}
    for lineno, fields in _records(path, 4, "qid 0 docid grade"):
        qid, _, docid, grade = fields
        docs = qrels.setdefault(qid, {})
        if docid in docs:
            raise EvaluationError(
                f"{path}:{lineno}: document {docid!r} is judged twice for query {qid!r}; keep one grade."
            )
        docs[docid] = _number(int, grade, path, lineno, "grade")
    return qrels


def write_ranked_run(path: str | Path, ranked: RankedRun, depth: int | None = None) -> Path:
    """Write the TREC run to `path` and its labels to `<path>.meta.json`; return the metadata path.

    Example:
        >>> write_ranked_run("runs/bm25.trec", RankedRun("bm25", run, "bm25", "real"))  # doctest: +SKIP
        PosixPath('runs/bm25.trec.meta.json')
    """
    write_run(path, ranked.run, ranked.name, depth)
    meta_path = _meta_path(path)
    meta = {
        "name": ranked.name,
        "mode": ranked.mode,
        "source": ranked.source.value,
        "encoder": ranked.encoder,
        "metadata": dict(ranked.metadata),
    }
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return meta_path


def read_ranked_run(path: str | Path) -> RankedRun:
    """Read a run written by `write_ranked_run` (the TREC file and its `.meta.json`).

    Example:
        >>> read_ranked_run("runs/bm25.trec").mode  # doctest: +SKIP
        'bm25'
    """
    meta_path = _meta_path(path)
    if not meta_path.is_file():
        raise EvaluationError(
            f"No metadata {meta_path} next to run {path}; write runs with write_ranked_run, "
            "or build RankedRun(name, read_run(path), mode=..., source=...) yourself."
        )
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    return RankedRun(
        name=meta["name"],
        run=read_run(path),
        mode=meta["mode"],
        source=meta["source"],
        encoder=meta.get("encoder", ""),
        metadata=dict(meta.get("metadata", {})),
    )


def _meta_path(path: str | Path) -> Path:
    return Path(str(path) + ".meta.json")


def _check_ids(table: Mapping[str, Mapping[str, float]]) -> None:
    for qid, docs in table.items():
        for text in (qid, *docs):
            if not text or any(c.isspace() for c in text):
                raise EvaluationError(
                    f"TREC files are whitespace-separated, so ids must be non-empty without "
                    f"whitespace; got {text!r} (query {qid!r}). Map query texts to ids such as "
                    "'q0001' first."
                )


def _records(path: str | Path, width: int, layout: str) -> list[tuple[int, list[str]]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise EvaluationError(f"Cannot read {path}: {exc}.") from exc
    records = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != width:
            raise EvaluationError(f"{path}:{lineno}: expected {width} fields ({layout}), got {len(fields)}: {line!r}.")
        records.append((lineno, fields))
    return records


def _number(kind: Callable[[str], _T], text: str, path: str | Path, lineno: int, what: str) -> _T:
    try:
        return kind(text)
    except ValueError:
        name = getattr(kind, "__name__", "a number")
        raise EvaluationError(f"{path}:{lineno}: {what} must be {name}, got {text!r}.") from None
