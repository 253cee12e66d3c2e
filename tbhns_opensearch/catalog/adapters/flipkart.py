"""Flipkart sample (PromptCloud, Kaggle): a deep category tree and key/value specifications as strings.

Both published spellings are read: the tree as `["A >> B >> C"]` or `['a', 'b', 'c']`, the
specifications as a Ruby hash `{"product_specification"=>[{"key"=>..., "value"=>...}]}` or a Python
list of `{'key': ..., 'value': ...}`.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tbhns_opensearch.catalog.adapters.base import DatasetAdapter
from tbhns_opensearch.catalog.fields import (
    is_missing,
    parse_id,
    parse_price,
    parse_rating,
    parse_text,
    parse_title,
)
from tbhns_opensearch.catalog.product import Product
from tbhns_opensearch.catalog.readers import read_csv_rows
from tbhns_opensearch.catalog.stream import RawRow, RecordError

PRODUCTS_FILE = "flipkart_products.csv"
TREE_SEPARATOR = ">>"
NO_RATING = "No rating available"


def flipkart_rows(directory: Path) -> Iterator[RawRow]:
    """One raw row per record of `flipkart_products.csv`."""
    return read_csv_rows(directory / PRODUCTS_FILE)


def flipkart_product(record: dict[str, Any]) -> Product:
    """Convert one row: discounted price (else retail), specifications as attributes, tree as path.

    A rating of 0 or "No rating available" means unrated (None). The retail price is kept as the
    attribute `retail_price`.

    Example:
        >>> p = flipkart_product({"uniq_id": "f1", "product_name": "aw bellies", "discounted_price": "499.0",
        ...     "product_category_tree": '["Footwear >> Women\\'s Footwear >> Ballerinas >> AW Bellies"]',
        ...     "product_specifications": '{"product_specification"=>[{"key"=>"Color", "value"=>"Red"}]}'})
        >>> p.taxonomy_path, p.attributes, p.price
        (('Footwear', "Women's Footwear", 'Ballerinas'), {'Color': 'Red'}, 499.0)
    """
    title = parse_title(record.get("product_name"), "product_name")
    retail = _positive(parse_price(record.get("retail_price"), "retail_price"))
    discounted = _positive(parse_price(record.get("discounted_price"), "discounted_price"))
    attributes = parse_specifications(record.get("product_specifications"))
    if retail is not None:
        attributes["retail_price"] = retail
    rating_text = parse_text(record.get("product_rating"), "product_rating")
    rating = None if rating_text == NO_RATING else _positive(parse_rating(rating_text, "product_rating"))
    return Product(
        id=parse_id(record.get("uniq_id"), "uniq_id"),
        title=title,
        description=parse_text(record.get("description"), "description"),
        brand=parse_text(record.get("brand"), "brand"),
        attributes=attributes,
        price=discounted if discounted is not None else retail,
        rating=rating,
        taxonomy_path=parse_category_tree(record.get("product_category_tree"), title),
    )


def parse_category_tree(value: Any, title: str) -> tuple[str, ...]:
    """Category path from the tree string; a last element that repeats the product name is dropped.

    The published trees often end with the product name, lower-cased and cut to ~45 characters
    ("sicons all purpose arnica dog shampoo 500 ml"); it names no category, so it is removed.

    Example:
        >>> parse_category_tree("['footwear', 'ballerinas', 'aw bellies']", "AW Bellies")
        ('footwear', 'ballerinas')
    """
    if is_missing(value):
        return ()
    elements = _literal(value, "product_category_tree", 'a list of names, e.g. ["A >> B >> C"]')
    if not isinstance(elements, list) or not all(isinstance(e, str) for e in elements):
        raise RecordError(
            "product_category_tree",
            value,
            "tree is not a list of names",
            'write it as a list of names, e.g. ["A >> B >> C"]',
        )
    path = [" ".join(part.split()) for element in elements for part in element.split(TREE_SEPARATOR) if part.strip()]
    if path and _repeats_name(path[-1], title):
        path.pop()
    return tuple(path)


def parse_specifications(value: Any) -> dict[str, Any]:
    """Specification key -> value; entries without a key (free-text package notes) are left out.

    Example:
        >>> parse_specifications("[{'key': 'Color', 'value': 'Red'}, {'value': '1 pair'}]")
        {'Color': 'Red'}
    """
    if is_missing(value):
        return {}
    text = value.replace("=>", ":") if isinstance(value, str) else value
    parsed = _literal(text, "product_specifications", "key/value pairs as published")
    if isinstance(parsed, dict) and "product_specification" in parsed:
        parsed = parsed["product_specification"]
    entries = [parsed] if isinstance(parsed, dict) else parsed
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise RecordError(
            "product_specifications",
            value,
            "specifications are not key/value pairs",
            "write them as a list of {'key': ..., 'value': ...}",
        )
    return {
        str(e["key"]).strip(): e["value"]
        for e in entries
        if not is_missing(e.get("key")) and not is_missing(e.get("value"))
    }


def _literal(value: Any, field: str, expected: str) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(value)  # evaluates literals only, never code
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise RecordError(
            field, value, f"not a JSON or Python literal ({type(exc).__name__})", f"write it as {expected}"
        ) from exc


def _repeats_name(element: str, title: str) -> bool:
    element_key, title_key = _name_key(element), _name_key(title)
    if not element_key or not title_key:
        return False
    return title_key.startswith(element_key) or element_key.startswith(title_key)


def _name_key(text: str) -> str:
    """Lower-case letters, digits and single spaces: "Boy's T-Shirt" -> "boys tshirt"."""
    return " ".join(re.sub(r"[^0-9a-z ]", "", text.lower()).split())


def _positive(number: float | None) -> float | None:
    return number if number else None


FLIPKART = DatasetAdapter(
    name="flipkart",
    summary="Flipkart sample: real titles, descriptions, specifications, brands and deep category trees",
    required_files=(PRODUCTS_FILE,),
    rows=flipkart_rows,
    to_product=flipkart_product,
    source_url="https://www.kaggle.com/datasets/PromptCloudHQ/flipkart-products",
)
