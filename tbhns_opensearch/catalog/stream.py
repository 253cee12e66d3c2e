"""Stream products from raw records, turning each bad record into a `Reject` instead of stopping.

Readers and dataset adapters only produce `RawRow`s and a `to_product` function; `CatalogStream` does the
rest the same way for all of them: conversion, duplicate ids, counts and the rejects JSONL file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from tbhns_opensearch.catalog.product import Product
from tbhns_opensearch.errors import CatalogError

EXCERPT_CHARS = 80


def excerpt(value: Any) -> str:
    """Short printable form of a bad value for messages and rejects.

    Example:
        >>> excerpt("x" * 100)[-3:]
        '...'
        >>> excerpt("a\\ud83d")
        'a\\\\ud83d'
    """
    text = value if isinstance(value, str) else repr(value)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")  # a lone surrogate prints as \ud83d
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 3] + "..."


class RecordError(CatalogError):
    """One record is unusable; `CatalogStream` turns it into a `Reject` and goes on with the next."""

    def __init__(self, field: str, value: Any, reason: str, fix: str) -> None:
        super().__init__(f"{field}={excerpt(value)!r}: {reason}; {fix}")
        self.field = field
        self.value = excerpt(value)
        self.reason = reason
        self.fix = fix


@dataclass(frozen=True)
class RawRow:
    """One source record before conversion, or the reason it could not even be parsed.

    Args:
        source: File the record came from (as given, for messages).
        line: 1-based line of a text file, or 1-based row/record of Parquet and JSON arrays.
        record: Column -> value; None when `error` says why the record could not be parsed.
        error: Parse failure of this record only (a broken JSON line, a CSV row with extra fields).
    """

    source: str
    line: int
    record: dict[str, Any] | None = None
    error: RecordError | None = None


@dataclass(frozen=True)
class Reject:
    """A record that was left out, with where it is, what was wrong and how to fix it.

    Example:
        >>> Reject("a.jsonl", 3, "title", "", "missing title", "give every product a title").to_dict()["line"]
        3
    """

    source: str
    line: int
    field: str
    value: str
    reason: str
    fix: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.field}={self.value!r}: {self.reason} ({self.fix})"


REJECT_FIELDS = frozenset(Reject.__dataclass_fields__)


@dataclass(frozen=True)
class ReadCounts:
    """Records read, products produced and records rejected; `read == ok + rejected`."""

    read: int = 0
    ok: int = 0
    rejected: int = 0


class CatalogStream:
    """Products from one source, read lazily; `rejects` and `counts` are complete once iteration ends.

    Each iteration re-reads the source from the start and resets `rejects` and `counts`. When
    `rejects_path` is set, every reject is also written to that JSONL file (rewritten per iteration, created at
    the first reject). A file already there is only ever replaced when it is a rejects file itself
    (`check_rejects_path`): never a catalog or anything else the stream did not write.

    Args:
        rows: Factory of raw rows (called once per iteration).
        to_product: Converts one record; raises `RecordError` for a bad one.
        rejects_path: Optional JSONL file for rejects.

    Example:
        >>> rows = lambda: iter([RawRow("m", 1, {"id": "a", "title": "A"}), RawRow("m", 2, {"id": "a", "title": "B"})])
        >>> stream = CatalogStream(rows, lambda r: Product(id=r["id"], title=r["title"]))
        >>> [p.title for p in stream], stream.counts
        (['A'], ReadCounts(read=2, ok=1, rejected=1))
    """

    def __init__(
        self,
        rows: Callable[[], Iterator[RawRow]],
        to_product: Callable[[dict[str, Any]], Product],
        rejects_path: str | Path | None = None,
    ) -> None:
        self._rows = rows
        self._to_product = to_product
        self.rejects_path = Path(rejects_path) if rejects_path is not None else None
        self.rejects: list[Reject] = []
        self.counts = ReadCounts()

    def __iter__(self) -> Iterator[Product]:
        self.rejects = []
        self.counts = ReadCounts()
        first_seen: dict[str, str] = {}
        if self.rejects_path is not None:
            check_rejects_path(self.rejects_path)
        rejects_file: TextIO | None = None
        try:
            for row in self._rows():
                try:
                    product = self._convert(row, first_seen)
                except RecordError as error:
                    reject = Reject(row.source, row.line, error.field, error.value, error.reason, error.fix)
                    self.rejects.append(reject)
                    self.counts = replace(self.counts, read=self.counts.read + 1, rejected=self.counts.rejected + 1)
                    if self.rejects_path is not None:
                        rejects_file = rejects_file or _open_rejects(self.rejects_path)
                        _write_reject(rejects_file, reject, self.rejects_path)
                    continue
                self.counts = replace(self.counts, read=self.counts.read + 1, ok=self.counts.ok + 1)
                yield product
        finally:
            if rejects_file is not None:
                rejects_file.close()

    def _convert(self, row: RawRow, first_seen: dict[str, str]) -> Product:
        if row.error is not None:
            raise row.error
        if row.record is None:
            raise RecordError("(record)", None, "empty record", "remove the record")
        product = self._to_product(row.record)
        if product.id in first_seen:
            raise RecordError(
                "id",
                product.id,
                f"duplicate id, first seen at {first_seen[product.id]}",
                "give every product a unique id, or remove the duplicate",
            )
        first_seen[product.id] = f"{row.source}:{row.line}"
        return product


def check_rejects_path(path: Path) -> None:
    """Refuse a rejects path that holds anything but an earlier rejects file: a catalog, a directory, any other
    file of the user's (replacing it would lose it).

    Example:
        >>> check_rejects_path(Path("/nonexistent/new.rejects.jsonl"))  # a new file is fine
    """
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_file():
        raise CatalogError(
            f"the rejects path {str(path)!r} exists and is not a regular file; pass a new file with --rejects"
        )
    if not is_rejects_file(path):
        raise CatalogError(
            f"the rejects path {str(path)!r} exists and is not a rejects file (it would be overwritten); "
            "pass a new file with --rejects"
        )


def is_rejects_file(path: Path) -> bool:
    """True when `path`'s first line is a reject as `CatalogStream` writes it (so the stream may replace it)."""
    try:
        with path.open(encoding="utf-8") as handle:
            first = handle.readline(64 * 1024)
        record = json.loads(first)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return False
    return isinstance(record, dict) and set(record) == REJECT_FIELDS


def _open_rejects(path: Path) -> TextIO:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.open("w", encoding="utf-8")
    except OSError as exc:
        raise CatalogError(
            f"cannot write the rejects file {str(path)!r}: {exc.strerror or exc}; pass a writable rejects path"
        ) from exc


def _write_reject(handle: TextIO, reject: Reject, path: Path) -> None:
    try:
        handle.write(json.dumps(reject.to_dict(), ensure_ascii=False) + "\n")
        handle.flush()
    except OSError as exc:  # a full disk: say so in one line
        raise CatalogError(
            f"cannot write the rejects file {str(path)!r}: {exc.strerror or exc}; "
            "free space there or pass another path with --rejects"
        ) from exc
