"""WANDS (Wayfair ANnotation DataSet, MIT) as published: tab-separated products, queries and labels."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tbhns_opensearch.catalog.adapters.base import DatasetAdapter
from tbhns_opensearch.catalog.fields import (
    parse_count,
    parse_id,
    parse_path,
    parse_rating,
    parse_text,
    parse_title,
)
from tbhns_opensearch.catalog.judgments import Judgment
from tbhns_opensearch.catalog.product import Product
from tbhns_opensearch.catalog.readers import read_tsv_rows
from tbhns_opensearch.catalog.stream import RawRow
from tbhns_opensearch.errors import CatalogError
from tbhns_opensearch.textfiles import csv_rows, path_problem

PRODUCTS_FILE = "product.csv"
QUERIES_FILE = "query.csv"
LABELS_FILE = "label.csv"
PATH_SEPARATOR = " / "
LABEL_GRADES = {"Exact": 2, "Partial": 1, "Irrelevant": 0}


@dataclass(frozen=True)
class WandsQuery:
    """One WANDS query and the product class it is about."""

    query_id: str
    query: str
    query_class: str


def wands_rows(directory: Path) -> Iterator[RawRow]:
    """One raw row per line of the tab-separated `product.csv`."""
    return read_tsv_rows(directory / PRODUCTS_FILE)


def wands_product(record: dict[str, Any]) -> Product:
    """Convert one row: " / " separated `category hierarchy`, `name:value|...` features as attributes.

    `product_class` and the rating/review counts are kept as attributes. WANDS has no brand or price.

    Example:
        >>> p = wands_product({"product_id": "0", "product_name": "solid wood platform bed",
        ...     "category hierarchy": "Furniture / Bedroom Furniture / Beds",
        ...     "product_features": "color:brown|slats:yes"})
        >>> p.taxonomy_path, p.attributes
        (('Furniture', 'Bedroom Furniture', 'Beds'), {'color': 'brown', 'slats': 'yes'})
    """
    attributes: dict[str, Any] = dict(parse_features(record.get("product_features")))
    if parse_text(record.get("product_class")):
        attributes["product_class"] = parse_text(record["product_class"])
    for column in ("rating_count", "review_count"):
        count = parse_count(record.get(column), column)
        if count is not None:
            attributes[column] = count
    return Product(
        id=parse_id(record.get("product_id"), "product_id"),
        title=parse_title(record.get("product_name"), "product_name"),
        description=parse_text(record.get("product_description"), "product_description"),
        attributes=attributes,
        rating=parse_rating(record.get("average_rating"), "average_rating"),
        taxonomy_path=parse_path(record.get("category hierarchy"), PATH_SEPARATOR, "category hierarchy"),
    )


def parse_features(value: Any) -> dict[str, str]:
    """`name:value|name:value` -> dict; pieces without a name or value are left out.

    Example:
        >>> parse_features("color:red|size: 2 x 3|oops")
        {'color': 'red', 'size': '2 x 3'}
    """
    features: dict[str, str] = {}
    for piece in parse_text(value).split("|"):
        name, _, item = piece.partition(":")
        if name.strip() and item.strip():
            features[name.strip()] = item.strip()
    return features


def load_wands_queries(directory: Path) -> list[WandsQuery]:
    """The queries of `query.csv` (query_id, query, query_class), in file order."""
    return [
        WandsQuery(row["query_id"], row["query"], row["query_class"])
        for _, row in _tsv(directory / QUERIES_FILE, ("query_id", "query", "query_class"))
    ]


def wands_judgments(labels: Path) -> list[Judgment]:
    """Graded labels of `label.csv`: Exact=2, Partial=1, Irrelevant=0, with the query text of the `query.csv`
    beside it joined in."""
    queries = {q.query_id: q.query for q in load_wands_queries(labels.parent)}
    judgments = []
    for line, row in _tsv(labels, ("query_id", "product_id", "label")):
        where = f"{labels}:{line}"
        query_id, label = row["query_id"], row["label"]
        if query_id not in queries:
            raise CatalogError(
                f"{where}: query_id {query_id!r} is not in {QUERIES_FILE}; "
                f"use the query.csv published with this label.csv"
            )
        if label not in LABEL_GRADES:
            raise CatalogError(
                f"{where}: label {label!r} is not one of {sorted(LABEL_GRADES)}; use the label.csv as published"
            )
        judgments.append(Judgment(queries[query_id], row["product_id"], LABEL_GRADES[label]))
    return judgments


def _tsv(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    if problem := path_problem(path):
        raise CatalogError(f"{path} {problem}; download WANDS from {WANDS.source_url} into {path.parent}")
    fix = "WANDS files are tab-separated with the published headers"
    for line, row in csv_rows(path, CatalogError, columns, fix, delimiter="\t"):
        yield line, {name: (value or "").strip() for name, value in row.items() if name}


WANDS = DatasetAdapter(
    name="wands",
    summary="WANDS (Wayfair, MIT): furniture products, 480 queries, Exact/Partial/Irrelevant labels",
    required_files=(PRODUCTS_FILE,),
    rows=wands_rows,
    to_product=wands_product,
    judgments=wands_judgments,
    judgments_file=LABELS_FILE,
    source_url="https://github.com/wayfair/WANDS",
)
