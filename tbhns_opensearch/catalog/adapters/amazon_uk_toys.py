"""Amazon UK toys sample (PromptCloud, Kaggle): real titles, brands, prices, ratings and category paths."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tbhns_opensearch.catalog.adapters.base import DatasetAdapter
from tbhns_opensearch.catalog.fields import (
    is_missing,
    parse_count,
    parse_id,
    parse_path,
    parse_price,
    parse_rating,
    parse_text,
    parse_title,
)
from tbhns_opensearch.catalog.product import Product
from tbhns_opensearch.catalog.readers import read_csv_rows
from tbhns_opensearch.catalog.stream import RawRow

PRODUCTS_FILE = "products.csv"
PATH_SEPARATOR = " > "
COUNT_COLUMNS = ("number_of_reviews", "number_of_answered_questions")


def amazon_rows(directory: Path) -> Iterator[RawRow]:
    """One raw row per line of `products.csv`."""
    return read_csv_rows(directory / PRODUCTS_FILE)


def amazon_product(record: dict[str, Any]) -> Product:
    """Convert one row: `manufacturer` is the brand, `category_path` is " > " separated (may be empty).

    Prices like "£3.99" or "£3.99 - £5.99" keep the first value; "4.5 out of 5 stars" becomes 4.5.
    Review and answered-question counts and the stock text become attributes.

    Example:
        >>> p = amazon_product({"uniq_id": "a1", "product_name": "Hornby train", "price": "£3.42",
        ...                     "average_review_rating": "4.9 out of 5 stars", "category_path": "Hobbies > Trains"})
        >>> p.price, p.rating, p.taxonomy_path
        (3.42, 4.9, ('Hobbies', 'Trains'))
    """
    attributes: dict[str, Any] = {}
    for column in COUNT_COLUMNS:
        count = parse_count(record.get(column), column)
        if count is not None:
            attributes[column] = count
    if not is_missing(record.get("number_available_in_stock")):
        attributes["number_available_in_stock"] = " ".join(record["number_available_in_stock"].split())
    return Product(
        id=parse_id(record.get("uniq_id"), "uniq_id"),
        title=parse_title(record.get("product_name"), "product_name"),
        brand=parse_text(record.get("manufacturer"), "manufacturer"),
        attributes=attributes,
        price=parse_price(record.get("price"), "price"),
        rating=parse_rating(record.get("average_review_rating"), "average_review_rating"),
        taxonomy_path=parse_path(record.get("category_path"), PATH_SEPARATOR, "category_path"),
    )


AMAZON_UK_TOYS = DatasetAdapter(
    name="amazon-uk-toys",
    summary="Amazon UK toys sample: real titles, brands, prices, ratings and 2-5 level category paths",
    required_files=(PRODUCTS_FILE,),
    rows=amazon_rows,
    to_product=amazon_product,
    source_url="https://www.kaggle.com/datasets/PromptCloudHQ/toy-products-on-amazon",
)
