"""Reading the text files a user hands in (data sets in their published layouts, hidden test sets in the same
layouts, training and benchmark configs): a path that is no regular file, bytes that are not UTF-8, CSV that
`csv` cannot read, a header without the columns a layout needs and a config that does not parse become one
error naming the file, the line and the fix, never a traceback.

Example:
    >>> from tbhns_opensearch.errors import CatalogError
    >>> rows = csv_rows(Path("judgments.csv"), CatalogError, ("query",), "give it a query column")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import stat
import tomllib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tbhns_opensearch.errors import ConfigError, TbhnsError


@contextmanager
def text_file(path: str | Path, error: type[TbhnsError], line: Callable[[], int]) -> Iterator[None]:
    """Read the UTF-8 text file `path` inside: bytes that are not UTF-8, and CSV that `csv` cannot read (a field
    over its size limit, a quote left open where strict), raise `error` naming the file, the line (`line()`: the
    last line read whole, as `csv.reader.line_num` counts) and the fix, instead of escaping as a traceback.

    Example:
        >>> import io
        >>> with text_file("t.csv", TbhnsError, lambda: 3):
        ...     io.TextIOWrapper(io.BytesIO(b"\\xff"), encoding="utf-8").read()
        Traceback (most recent call last):
        ...
        tbhns_opensearch.errors.TbhnsError: t.csv: byte 0xff after line 3 is not UTF-8; save the file as UTF-8
    """
    try:
        yield
    except UnicodeDecodeError as exc:
        where = f"after line {line()}" if line() else "in its first lines"
        raise error(f"{path}: byte 0x{exc.object[exc.start]:02x} {where} is not UTF-8; save the file as UTF-8") from exc
    except csv.Error as exc:
        raise error(f"{path}:{line() + 1}: not CSV ({exc}); fix the line, or save the file as CSV") from exc


def csv_rows(
    path: Path, error: type[TbhnsError], columns: Sequence[str], fix: str, delimiter: str = ","
) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, row) of each data row of the CSV file `path` (its header is line 1; a byte order mark is skipped).
    A header without `columns` raises `error` naming the missing ones and the `fix`; so do bytes that are not
    UTF-8 and CSV that `csv` cannot read (`text_file`).

    Example:
        >>> from tbhns_opensearch.errors import CatalogError
        >>> next(csv_rows(Path("judgments.csv"), CatalogError, ("query",), "give it a query column"))  # doctest: +SKIP
        (2, {'query': 'usb cable', 'docid': 'p1', 'rating': '3'})
    """
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        with text_file(path, error, lambda: reader.line_num):
            if reader.fieldnames is None:
                raise error(f"{path} is empty; {fix}")
            missing = [column for column in columns if column not in reader.fieldnames]
            if missing:
                raise error(f"{path}:1: the header lacks columns {missing} (has {reader.fieldnames}); {fix}")
            for row in reader:
                yield reader.line_num, row


def path_problem(path: Path) -> str | None:
    """What keeps `path` from being read as a file ("does not exist", "is a directory", ...), or None.

    Example:
        >>> path_problem(Path("/dev/null"))
        'is not a regular file (a device, FIFO or socket)'
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "does not exist"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if stat.S_ISDIR(mode):
        return "is a directory"
    return None if stat.S_ISREG(mode) else "is not a regular file (a device, FIFO or socket)"


def read_config_file(path: str | Path, what: str, see: str, error: type[TbhnsError] = ConfigError) -> dict[str, Any]:
    """The top-level table of the TOML file `path` (JSON when it ends in .json). A file that is missing, not a
    regular file (`path_problem`), unreadable, not UTF-8, not valid TOML / JSON or not a table raises `error`: one
    line naming `what` it is, the problem and where a valid one is (`see`).

    Example:
        >>> read_config_file("nowhere.toml", "training config", "training/*.toml")
        Traceback (most recent call last):
        ...
        tbhns_opensearch.errors.ConfigError: training config 'nowhere.toml' does not exist; see training/*.toml
    """
    path = Path(path)
    kind = "JSON" if path.suffix == ".json" else "TOML"
    if problem := path_problem(path):  # a FIFO would block the read
        raise error(f"{what} {str(path)!r} {problem}; see {see}")
    try:
        text = path.read_text(encoding="utf-8")
        raw = json.loads(text) if kind == "JSON" else tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); save it as UTF-8") from exc
    except OSError as exc:
        raise error(f"{what} {str(path)!r} cannot be read ({exc.strerror}); pass a {kind} file, see {see}") from exc
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise error(f"{what} {path} is not valid {kind}: {exc}") from exc
    if not isinstance(raw, dict):
        raise error(f"{what} {path} holds a JSON {type(raw).__name__}, not a table of settings; see {see}")
    return raw
