"""Parse one field of a source record into its canonical form, or raise `RecordError` saying why not.

Shared by the column-mapped readers and the dataset adapters, so "£3.99", "4.5 out of 5 stars" and
"A > B > C" mean the same everywhere.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from tbhns_opensearch.catalog.stream import RecordError

_NUMBER = re.compile(r"(?P<prefix>\D*?)(?P<number>\d[\d,]*(?:\.\d+)?)(?P<rest>.*)", re.S)
_CURRENCY_WORD = re.compile(r"[A-Za-z]{0,3}\.?")
# after the number: an optional currency code or symbol, then optionally a range ("- 5.99"); \u2013 is an en dash
_RANGE_REST = re.compile(r"\s*(?:[A-Za-z]{0,3}|[^\w\s\-\u2013~]{1,2})\s*(?:(?:-|\u2013|~|to)\s*.*)?", re.S)
_RATING = re.compile(r"\s*(?P<value>\d+(?:\.\d+)?)\s*(?:(?:out of|/)\s*\d+(?:\.\d+)?\s*(?:stars?)?)?\s*", re.I)


MAX_ID_BYTES = 512  # OpenSearch refuses a longer _id, and with it the whole bulk request


def is_missing(value: Any) -> bool:
    """True for None, NaN and blank strings.

    Example:
        >>> is_missing(" "), is_missing(float("nan")), is_missing(0)
        (True, True, False)
    """
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and not value.strip()


def parse_text(value: Any, field: str = "text") -> str:
    """Stripped text; missing values become "", numbers their digits; an object, list or boolean is a
    RecordError (it would otherwise be indexed as Python's repr of it).

    Example:
        >>> parse_text("  Lego "), parse_text(None), parse_text(12)
        ('Lego', '', '12')
    """
    if isinstance(value, (dict, list, tuple, bool)):
        kind = "a boolean" if isinstance(value, bool) else "an object" if isinstance(value, dict) else "a list"
        raise RecordError(field, value, f"{kind}, not text", "give this field a plain string")
    return "" if is_missing(value) else str(value).strip()


def parse_id(value: Any, field: str = "id") -> str:
    """Product id as a string; integral numbers lose a trailing ".0" (Parquet and pandas floats).

    Example:
        >>> parse_id(123.0), parse_id(" sku-1 ")
        ('123', 'sku-1')
    """
    if is_missing(value):
        raise RecordError(field, value, "missing id", "give every product a non-empty id")
    if isinstance(value, (bool, dict, list)):
        raise RecordError(field, value, "id is not a string or number", "use a string or integer id")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if len(text.encode("utf-8")) > MAX_ID_BYTES:
        raise RecordError(field, value, f"id is longer than OpenSearch's {MAX_ID_BYTES} bytes",
                          "shorten it (e.g. a hash of the long id)")  # fmt: skip
    return text


def parse_title(value: Any, field: str = "title") -> str:
    """Non-empty title.

    Example:
        >>> parse_title(" USB cable ")
        'USB cable'
    """
    title = parse_text(value, field)
    if not title:
        raise RecordError(field, value, "missing title", "give every product a non-empty title")
    return title


def parse_price(value: Any, field: str = "price") -> float | None:
    """Price as a float: currency symbols or codes are dropped, a range keeps its first value.

    Args:
        value: A number, or text such as "£3.99", "1,299.00 INR", "£3.99 - £5.99"; missing -> None.
        field: Source column, named in the error.

    Example:
        >>> parse_price("£3.99 - £5.99"), parse_price("1,299.00"), parse_price(None)
        (3.99, 1299.0, None)
    """
    return _parse_number(value, field, "price", "a non-negative number such as 3.99 or '£3.99'")


def parse_rating(value: Any, field: str = "rating") -> float | None:
    """Average rating as a float; accepts "4.5 out of 5 stars" and "4.5/5".

    Example:
        >>> parse_rating("4.5 out of 5 stars"), parse_rating(4), parse_rating("")
        (4.5, 4.0, None)
    """
    if isinstance(value, str) and not is_missing(value):
        match = _RATING.fullmatch(value)
        if match is None:
            raise RecordError(field, value, "rating is not a number", "use a number such as 4.5")
        return float(match["value"])
    return _parse_number(value, field, "rating", "a non-negative number such as 4.5")


def parse_count(value: Any, field: str) -> int | None:
    """A non-negative whole number such as a review count; accepts "1,040" and 15.0.

    Example:
        >>> parse_count("1,040", "reviews"), parse_count(15.0, "reviews"), parse_count("", "reviews")
        (1040, 15, None)
    """
    number = _parse_number(value, field, "count", "a whole number such as 12")
    if number is not None and not number.is_integer():
        raise RecordError(field, value, "count is not a whole number", "use a whole number such as 12")
    return None if number is None else int(number)


def parse_path(value: Any, separator: str, field: str = "taxonomy_path") -> tuple[str, ...]:
    """Category path from root to leaf; runs of whitespace inside a name become one space.

    Args:
        value: A list of names, JSON list text ('["Toys", "Games"]'), or text split on `separator`.
        separator: Separator of a path written as text, e.g. " > ".
        field: Source column, named in the error.

    Example:
        >>> parse_path("Toys > Board  Games > ", " > "), parse_path(["Toys"], " > "), parse_path(None, " > ")
        (('Toys', 'Board Games'), ('Toys',), ())
    """
    if is_missing(value):
        return ()
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise RecordError(field, value, f"path is not a valid JSON list ({exc.msg})",
                              f"write it as a JSON list or as text separated by {separator!r}") from exc
    if isinstance(value, str):
        value = value.split(separator)
    if not isinstance(value, (list, tuple)) or not all(isinstance(part, str) for part in value):
        raise RecordError(field, value, "path is not a list of names",
                          f"use a list of category names or text separated by {separator!r}")
    return tuple(" ".join(part.split()) for part in value if part.strip())


def _parse_number(value: Any, field: str, what: str, expected: str) -> float | None:
    if is_missing(value):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise RecordError(field, value, f"{what} is not a number", f"use {expected}")
    number = _number_from_text(value) if isinstance(value, str) else float(value)
    if number is None:
        raise RecordError(field, value, f"{what} is not a number", f"use {expected}")
    if number < 0 or math.isinf(number):
        raise RecordError(field, value, f"{what} is negative or infinite", f"use {expected}")
    return number


def _number_from_text(text: str) -> float | None:
    match = _NUMBER.fullmatch(text.strip())
    if match is None:
        return None
    prefix = re.sub(r"[^A-Za-z.]", "", match["prefix"])
    if not _CURRENCY_WORD.fullmatch(prefix) or not _RANGE_REST.fullmatch(match["rest"]):
        return None
    sign = -1.0 if "-" in match["prefix"] else 1.0
    number = match["number"]
    if re.fullmatch(r"\d+,\d{2}", number):  # decimal comma: "12,99"
        return sign * float(number.replace(",", "."))
    return sign * float(number.replace(",", ""))
