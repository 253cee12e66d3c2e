"""Read a catalog file (JSONL, CSV, TSV or Parquet; JSONL and CSV may be gzipped) as a stream of products; write
the canonical JSONL.

Each format is a row reader in `ROW_READERS`; the column mapping and `CatalogStream` do the rest, so a bad
record becomes a `Reject` with its line and never costs its neighbours.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import date, time
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from tbhns_opensearch.catalog.fields import MAX_DEPTH
from tbhns_opensearch.catalog.mapping import CANONICAL, ColumnMapping
from tbhns_opensearch.catalog.product import Product
from tbhns_opensearch.catalog.stream import CatalogStream, RawRow, RecordError
from tbhns_opensearch.errors import CatalogError
from tbhns_opensearch.textfiles import path_problem

PARQUET_BATCH_ROWS = 4096
GZIP_MAGIC = b"\x1f\x8b"

RowReader = Callable[[Path, ColumnMapping | None, bool], Iterator[RawRow]]
"""(path, mapping whose columns the header must have (None: no check), strict) -> raw rows.
Strict requires every mapped column; otherwise only `id` and `title`."""


def read_catalog(
    path: str | Path,
    mapping: ColumnMapping | None = None,
    fmt: str | None = None,
    rejects_path: str | Path | None = None,
) -> CatalogStream:
    """Stream the products of one catalog file; rejects and counts are filled in as it is iterated.

    Args:
        path: Catalog file.
        mapping: Source columns of each field; None reads the canonical layout (`id`, `title`, ...),
            where only `id` and `title` must exist. An explicit mapping must name existing columns.
        fmt: One of `ROW_READERS` ("jsonl", "csv", "tsv", "parquet"); None picks it from the suffix (a
            further ".gz" is skipped: gzipped JSONL, CSV and TSV are read as they are, whatever their suffix).
        rejects_path: Optional JSONL file that receives one line per rejected record.

    Example:
        >>> stream = read_catalog("catalog.jsonl", rejects_path="rejects.jsonl")  # doctest: +SKIP
        >>> products = list(stream); stream.counts, stream.rejects[:1]  # doctest: +SKIP
    """
    path = Path(path)
    problem = path_problem(path)
    if problem:  # a FIFO could not be read twice, /dev/zero never ends
        raise CatalogError(
            f"catalog file {str(path)!r} {problem}; pass the path of a catalog file "
            "(JSONL, CSV or TSV, plain or gzipped, or Parquet)"
        )
    read_rows = ROW_READERS[_format_of(path, fmt)]
    chosen = mapping or CANONICAL
    strict = mapping is not None
    return CatalogStream(lambda: read_rows(path, chosen, strict), chosen.to_product, rejects_path)


def write_catalog_jsonl(products: Iterable[Product], path: str | Path) -> int:
    """Write products as canonical JSONL (one `Product.to_dict()` per line), atomically.

    Returns:
        The number of products written.

    Example:
        >>> write_catalog_jsonl([Product(id="p1", title="Mug")], "catalog.jsonl")  # doctest: +SKIP
        1
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    count = 0
    with partial.open("w", encoding="utf-8") as out:
        for product in products:
            out.write(json.dumps(product.to_dict(), ensure_ascii=False) + "\n")
            count += 1
    os.replace(partial, path)
    return count


def read_jsonl_rows(path: Path, mapping: ColumnMapping | None = None, strict: bool = False) -> Iterator[RawRow]:
    """One raw row per non-blank line; a line that is not a JSON object, or whose mapped values nest deeper than
    `MAX_DEPTH` or hold a lone surrogate, becomes an error row."""
    columns = (mapping or CANONICAL).columns()
    with _opened(path) as lines:
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                yield RawRow(
                    str(path),
                    number,
                    error=RecordError(
                        "(line)",
                        raw.decode("utf-8", "replace").strip(),
                        _json_failure(exc),
                        "fix or remove the line; each line must be one UTF-8 JSON object",
                    ),
                )
                continue
            if not isinstance(record, dict):
                yield RawRow(
                    str(path),
                    number,
                    error=RecordError(
                        "(line)", record, "line is not a JSON object", "write each product as one JSON object"
                    ),
                )
                continue
            error = _unfit_value(record, columns, raw.decode("utf-8", "replace").strip())
            yield RawRow(str(path), number, None if error else record, error)


def read_csv_rows(
    path: Path, mapping: ColumnMapping | None = None, strict: bool = False, delimiter: str = ","
) -> Iterator[RawRow]:
    """One raw row per CSV record, numbered by the file line it starts on (the header is line 1). A quote left
    open (its record runs on over later lines and breaks CSV's quoting) rejects its own line only: reading goes
    on with the next line."""
    previous = csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long descriptions exceed the 128 KiB default
    try:  # the limit is process-wide: it is put back when the file is done
        with _opened(path) as binary:
            lines = _ReplayableLines(io.TextIOWrapper(binary, "utf-8-sig", "surrogateescape", newline=""))
            reader = csv.reader(lines, delimiter=delimiter)  # bad bytes: per row
            try:
                header = next(reader, None)
                if header is None:
                    return
                _check_unique(header, path)
                if mapping is not None:
                    mapping.check_header(header, str(path), strict=strict)
                start = 1 + len(lines.taken())  # the header's lines
                for values in reader:
                    record_lines = lines.taken()
                    if _quote_left_open(record_lines, delimiter):
                        lines.put_back(record_lines[1:])
                        yield RawRow(
                            str(path),
                            start,
                            error=RecordError(
                                "(row)",
                                _undecoded(record_lines[0].rstrip("\r\n")),
                                "a quote opened on this line is "
                                f"never closed properly (the row ran on to line {start + len(record_lines) - 1})",
                                'close the quote, or double a quote inside a quoted field (""); the next line was '
                                "read as a row of its own",
                            ),
                        )
                        start += 1
                        continue
                    if values:
                        yield _csv_row(path, start, header, values, len(record_lines))
                    start += len(record_lines)
            except csv.Error as exc:
                raise CatalogError(
                    f"{path}:{reader.line_num}: unreadable CSV ({exc}); fix the quoting on that line "
                    f"or pass fmt='tsv' if the file is tab-separated"
                ) from exc
    finally:
        csv.field_size_limit(previous)


class _ReplayableLines:
    """The lines `csv.reader` reads, keeping those of the record being read, which can be put back to be read
    again (after a quote left open swallowed them)."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)
        self._back: list[str] = []  # put back, the next one last
        self._taken: list[str] = []

    def __iter__(self) -> _ReplayableLines:
        return self

    def __next__(self) -> str:
        line = self._back.pop() if self._back else next(self._lines)
        self._taken.append(line)
        return line

    def taken(self) -> list[str]:
        """The lines read since the last call."""
        taken, self._taken = self._taken, []
        return taken

    def put_back(self, lines: list[str]) -> None:
        self._back.extend(reversed(lines))


def _quote_left_open(lines: list[str], delimiter: str) -> bool:
    """True for a record over several lines that breaks CSV's quoting: its quote is never closed, or is closed
    only by the opening quote of a later field (strict parsing refuses both)."""
    if len(lines) < 2:
        return False
    try:
        next(csv.reader(lines, delimiter=delimiter, strict=True))
    except csv.Error:
        return True
    return False


def _check_unique(header: list[str], path: Path) -> None:
    """Refuse a header that names a column twice: a record keeps only one of them."""
    for name in dict.fromkeys(header):
        if header.count(name) > 1:
            raise CatalogError(
                f"{path}: column {name!r} appears {header.count(name)} times in the header; rename "
                "or remove the extra columns, a record can hold only one column of a name"
            )


@contextmanager
def _opened(path: Path) -> Iterator[IO[bytes]]:
    """The file's bytes, gunzipped when they start with gzip's magic number (whatever the suffix); corrupt or
    cut gzip data is one CatalogError naming the file."""
    with path.open("rb") as raw:
        compressed = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        try:
            yield gzip.GzipFile(fileobj=raw) if compressed else raw
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise CatalogError(
                f"{path}: the gzip data is corrupt or cut short ({exc}); the records before it were "
                "read; compress the catalog again"
            ) from exc


_UNDECODED = re.compile("[\udc80-\udcff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def read_tsv_rows(path: Path, mapping: ColumnMapping | None = None, strict: bool = False) -> Iterator[RawRow]:
    """Tab-separated variant of `read_csv_rows`."""
    return read_csv_rows(path, mapping, strict, delimiter="\t")


def read_parquet_rows(path: Path, mapping: ColumnMapping | None = None, strict: bool = False) -> Iterator[RawRow]:
    """One raw row per Parquet row (numbered from 1), read in batches of the mapped columns only."""
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - pyarrow is a dependency
        raise CatalogError("reading Parquet needs pyarrow; install it with `pip install pyarrow`") from exc
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        with path.open("rb") as raw:
            if raw.read(2) == GZIP_MAGIC:
                raise CatalogError(
                    f"{path}: gzip-compressed Parquet cannot be read; decompress it (gunzip) first: "
                    "Parquet compresses its own pages"
                ) from exc
        raise CatalogError(f"{path}: not a readable Parquet file ({exc}); check the file or pass fmt") from exc
    names = parquet.schema_arrow.names
    _check_unique(names, path)
    columns = None
    if mapping is not None:
        mapping.check_header(names, str(path), strict=strict)
        columns = [column for column in mapping.columns() if column in names]
    number = 0
    batches = parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns)
    while True:
        try:
            batch = next(batches, None)
        except Exception as exc:  # a corrupt page or a truncated file: pyarrow's errors vary by cause
            raise CatalogError(
                f"{path}: unreadable after row {number} ({type(exc).__name__}: {exc}); the rows "
                "before it were read; repair or re-export the file"
            ) from exc
        if batch is None:
            return
        for record in batch.to_pylist():
            number += 1
            yield RawRow(str(path), number, {name: _plain(value) for name, value in record.items()})


ROW_READERS: dict[str, RowReader] = {
    "jsonl": read_jsonl_rows,
    "csv": read_csv_rows,
    "tsv": read_tsv_rows,
    "parquet": read_parquet_rows,
}

SUFFIX_FORMATS: dict[str, str] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def _plain(value: Any) -> Any:
    """An Arrow value as JSON would hold it: a decimal is a number, binary is its UTF-8 text (hex when it is not
    UTF-8), a date or time is ISO 8601 text; lists, structs and map entries are converted item by item.

    Example:
        >>> _plain([Decimal("9.99"), b"XL", b"\\xff", date(2024, 5, 1)])
        [9.99, 'XL', 'ff', '2024-05-01']
    """
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.hex()
    if isinstance(value, (date, time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)  # a map entry stays a (key, value) tuple
    if isinstance(value, dict):
        return {name: _plain(item) for name, item in value.items()}
    return value


def _json_failure(exc: ValueError | RecursionError) -> str:
    if isinstance(exc, RecursionError):
        return "invalid JSON: nested too deeply to read"
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8"
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON: {exc.msg}"
    return "invalid JSON: a number with more digits than Python reads (4300)"


def _unfit_value(record: dict[str, Any], columns: Iterable[str], line: str) -> RecordError | None:
    """The first of the mapped values that nests deeper than `MAX_DEPTH` or holds a lone surrogate (JSON's
    "\\ud83d" without its pair, which is no character: OpenSearch cannot store it), as a RecordError."""
    for column in columns:
        stack = [(record.get(column), 1)]
        while stack:
            value, depth = stack.pop()
            if depth > MAX_DEPTH:
                return RecordError(
                    column,
                    line,
                    f"nested more than {MAX_DEPTH} levels deep",
                    "flatten the value; attributes take a value or a list of values per name",
                )
            if isinstance(value, dict):
                stack.extend((item, depth + 1) for item in (*value, *value.values()))
            elif isinstance(value, list):
                stack.extend((item, depth + 1) for item in value)
            elif isinstance(value, str) and _SURROGATE.search(value):
                return RecordError(
                    column,
                    value.encode("utf-8", "backslashreplace").decode("utf-8"),
                    "text holds a lone UTF-16 surrogate (half of a character)",
                    "write the character itself, or both halves of its pair such as \\ud83d\\ude00",
                )
    return None


def _format_of(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in ROW_READERS:
            raise CatalogError(f"unknown catalog format {fmt!r}; valid formats are {sorted(ROW_READERS)}")
        return fmt
    suffix = (Path(path.stem) if path.suffix.lower() == ".gz" else path).suffix.lower()
    if suffix not in SUFFIX_FORMATS:
        raise CatalogError(
            f"cannot tell the format of {str(path)!r} from its suffix {suffix!r}; "
            f"use one of {sorted(SUFFIX_FORMATS)} or pass fmt (one of {sorted(ROW_READERS)})"
        )
    return SUFFIX_FORMATS[suffix]


def _undecoded(text: str) -> str:
    """Text read with surrogateescape, its bytes that were not UTF-8 shown as U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _csv_row(path: Path, line: int, header: list[str], values: list[str], lines: int) -> RawRow:
    if any(_UNDECODED.search(value) for value in values):  # bytes that were not UTF-8, kept by surrogateescape
        return RawRow(
            str(path),
            line,
            error=RecordError(
                "(row)",
                _undecoded(",".join(values)),
                "not UTF-8",
                "re-encode the file, e.g. `iconv -f latin1 -t utf-8`, or fix this row",
            ),
        )
    if len(values) != len(header):
        spans = f" (the row spans lines {line}-{line + lines - 1})" if lines > 1 else ""
        return RawRow(
            str(path),
            line,
            error=RecordError(
                "(row)",
                ",".join(values),
                f"row has {len(values)} fields, the header has {len(header)}{spans}",
                "quote fields that contain the delimiter, or fix the row's field count",
            ),
        )
    return RawRow(str(path), line, dict(zip(header, values, strict=True)))
