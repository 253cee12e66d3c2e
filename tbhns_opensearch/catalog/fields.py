"""Parse one field of a source record into its canonical form, or raise `RecordError` saying why not.

Shared by the column-mapped readers and the dataset adapters, so "£3.99", "4.5 out of 5 stars" and
"A > B > C" mean the same everywhere.
"""

from __future__ import annotations

import json
import math
import re
import reprlib
from collections.abc import Iterator
from typing import Any

from tbhns_opensearch.catalog.stream import RecordError

_NUMBER = re.compile(r"(?P<prefix>\D*?)(?P<number>\d[\d,]*(?:\.\d+)?)(?P<rest>.*)", re.S)
_CURRENCY_WORD = re.compile(r"[A-Za-z]{0,3}\.?")
# after the number: an optional currency code or symbol, then optionally a range ("- 5.99"); \u2013 is an en dash
_RANGE_REST = re.compile(r"\s*(?:[A-Za-z]{0,3}|[^\w\s\-\u2013~]{1,2})\s*(?:(?:-|\u2013|~|to)\s*.*)?", re.S)
_RATING = re.compile(r"\s*(?P<value>\d+(?:\.\d+)?)\s*(?:(?:out of|/)\s*\d+(?:\.\d+)?\s*(?:stars?)?)?\s*", re.I)


MAX_DEPTH = 32  # no product field nests deeper; far deeper values overflow the stack of repr and json.dumps
OBJECT_FIX = 'write them as a JSON object, e.g. {"colour": "red", "colors": ["red", "blue"]}'
FLOAT32_MAX = 3.4028234663852886e38  # price and rating are OpenSearch `float` fields; the cluster refuses more
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
        raise RecordError(
            field,
            value,
            f"id is longer than OpenSearch's {MAX_ID_BYTES} bytes",
            "shorten it (e.g. a hash of the long id)",
        )
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
    path = value
    if isinstance(value, str) and value.lstrip().startswith("["):
        path = _loads(
            value,
            field,
            "path is not a valid JSON list",
            f"write it as a JSON list or as text separated by {separator!r}",
        )
    if isinstance(path, str):
        path = path.split(separator)
    if not isinstance(path, (list, tuple)) or not all(isinstance(part, str) for part in path):
        raise RecordError(
            field,
            _shown(value),
            "path is not a list of names",
            f"use a list of category names or text separated by {separator!r}",
        )
    return tuple(" ".join(part.split()) for part in path if part.strip())


AttributeValue = str | int | float | bool | list[str | int | float | bool]


def parse_attributes(value: Any, field: str = "attributes") -> dict[str, AttributeValue]:
    """Attributes from a JSON object, its text, or a Parquet map's (key, value) pairs; see `attribute_entries`.

    Example:
        >>> parse_attributes('{"colors": ["red", "blue"], "size": {"w": 3}, "gift": null}')
        {'colors': ['red', 'blue'], 'size.w': 3}
    """
    attributes = _loads(value, field, "attributes are not valid JSON", OBJECT_FIX) if isinstance(value, str) else value
    if isinstance(attributes, list) and all(isinstance(pair, tuple) and len(pair) == 2 for pair in attributes):
        attributes = dict(attributes)  # a Parquet map column reads as a list of (key, value) tuples
    if not isinstance(attributes, dict):
        raise RecordError(field, _shown(value), "attributes are not an object", OBJECT_FIX)
    return dict(attribute_entries("", attributes, field))


def attribute_entries(name: str, value: Any, field: str, depth: int = 0) -> Iterator[tuple[str, AttributeValue]]:
    """The (name, value) entries of one attribute. A list is a multi-valued attribute (a filter matches any of
    its values) and must hold plain values; an object is flattened into dotted names; missing values are dropped.

    Example:
        >>> dict(attribute_entries("size", {"w": 3, "colors": ["red", None], "h": ""}, "attributes"))
        {'size.w': 3, 'size.colors': ['red']}
    """
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            raise RecordError(
                field, _shown(value), f"attribute {name!r} nests more than {MAX_DEPTH} objects deep", OBJECT_FIX
            )
        for key, item in value.items():
            yield from attribute_entries(f"{name}.{key}" if name else str(key), item, field, depth + 1)
    elif isinstance(value, (list, tuple)):
        items = [item for item in value if not is_missing(item)]
        if any(isinstance(item, (dict, list, tuple)) for item in items):
            raise RecordError(
                field,
                _shown(value),
                f"attribute {name!r} holds a list of lists or objects",
                f"give it a value or a list of values; {OBJECT_FIX}",
            )
        if items:
            yield name, items
    elif not is_missing(value):
        yield name, value


def _loads(text: str, field: str, problem: str, fix: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # a number beyond 4300 digits, or nesting beyond the stack
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply or a number too long"
        raise RecordError(field, text, f"{problem} ({detail})", fix) from exc


def _shown(value: Any) -> Any:
    """A value as an error shows it: text as is, anything else in a short, depth-capped repr."""
    return value if isinstance(value, str) else reprlib.repr(value)


def _parse_number(value: Any, field: str, what: str, expected: str) -> float | None:
    if is_missing(value):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise RecordError(field, value, f"{what} is not a number", f"use {expected}")
    try:
        number = _number_from_text(value) if isinstance(value, str) else float(value)
    except OverflowError:  # an integer beyond any float
        number = math.inf
    if number is None:
        raise RecordError(field, value, f"{what} is not a number", f"use {expected}")
    if number < 0:
        raise RecordError(field, value, f"{what} is negative", f"use {expected}")
    if number > FLOAT32_MAX:
        raise RecordError(
            field,
            value,
            f"{what} is beyond the largest number OpenSearch's float field holds ({FLOAT32_MAX:.2g})",
            f"use {expected}",
        )
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
