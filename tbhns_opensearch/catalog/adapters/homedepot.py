"""Home Depot product search relevance (Kaggle 2016): real shopper queries, product titles, graded pairs.

`products.csv` (product_uid, product_title) is the catalog; `judgments.csv` (id, product_uid, search_term,
relevance) holds each pair's mean grade over 3+ raters (1 irrelevant, 2 partly, 3 exact; 2.33, 2.67 occur).
Any file in that layout (the held-back test queries, say) is read by `read_homedepot_judgments`.

Grades: the raters' mean is rounded half up and shifted to start at 0 (`homedepot_grade`):

    mean     1, 1.25, 1.33    1.5 ... 2.33    2.5, 2.67, 2.75, 3
    grade    0 irrelevant     1 partly        2 exact (relevant)

A pair counts as relevant, in training (`min_grade`) and in the benchmark (`threshold`), at grade 2: the
raters' mean is at least 2.5, so most raters called the product an exact match.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tbhns_opensearch.catalog.adapters.base import DatasetAdapter
from tbhns_opensearch.catalog.fields import parse_id, parse_title
from tbhns_opensearch.catalog.judgments import Judgment
from tbhns_opensearch.catalog.product import Product
from tbhns_opensearch.catalog.readers import read_csv_rows
from tbhns_opensearch.catalog.stream import RawRow
from tbhns_opensearch.errors import CatalogError
from tbhns_opensearch.textfiles import csv_rows, path_problem

PRODUCTS_FILE = "products.csv"
JUDGMENTS_FILE = "judgments.csv"
JUDGMENT_COLUMNS = ("product_uid", "search_term", "relevance")
RELEVANT_GRADE = 2
"""Grade 2 (raters' mean >= 2.5) is relevant: the threshold of training pairs and of the benchmark."""


def homedepot_rows(directory: Path) -> Iterator[RawRow]:
    """One raw row per line of `products.csv`."""
    return read_csv_rows(directory / PRODUCTS_FILE)


def homedepot_product(record: dict[str, Any]) -> Product:
    """Convert one row: the catalog has ids and titles only (no brand, price or category).

    Example:
        >>> homedepot_product({"product_uid": "100001", "product_title": "Simpson Strong-Tie 12-Gauge Angle"}).title
        'Simpson Strong-Tie 12-Gauge Angle'
    """
    return Product(
        id=parse_id(record.get("product_uid"), "product_uid"),
        title=parse_title(record.get("product_title"), "product_title"),
    )


def homedepot_grade(mean: float) -> int:
    """The integer grade of a raters' mean relevance in [1, 3] (see the module docstring).

    Example:
        >>> [homedepot_grade(m) for m in (1.0, 1.33, 1.5, 2.33, 2.5, 2.67, 3.0)]
        [0, 0, 1, 1, 2, 2, 2]
    """
    return math.floor(mean + 0.5) - 1


def read_homedepot_judgments(path: str | Path) -> list[Judgment]:
    """Graded judgments from a file in the Home Depot layout (`id, product_uid, search_term, relevance`).

    Any bad row is an error naming the file, line, field and the fix.

    Example:
        >>> read_homedepot_judgments("../shared/data/homedepot/judgments.csv")[0]  # doctest: +SKIP
        Judgment(query='angle bracket', product_id='100001', grade=2)
    """
    path = Path(path)
    if problem := path_problem(path):
        raise CatalogError(
            f"Home Depot judgments file {str(path)!r} {problem}; pass a CSV with the columns "
            f"id,{','.join(JUDGMENT_COLUMNS)}"
        )
    fix = f"Home Depot judgments need the columns id,{','.join(JUDGMENT_COLUMNS)}"
    return [_judgment(row, f"{path}:{line}") for line, row in csv_rows(path, CatalogError, JUDGMENT_COLUMNS, fix)]


def _judgment(row: dict[str, str], where: str) -> Judgment:
    query, product_id = (row["search_term"] or "").strip(), (row["product_uid"] or "").strip()
    if not query or not product_id:
        raise CatalogError(f"{where}: empty search_term or product_uid; every judgment needs both")
    try:
        mean = float(row["relevance"])
    except (TypeError, ValueError):
        mean = math.nan
    if not 1.0 <= mean <= 3.0:
        raise CatalogError(
            f"{where}: relevance {row['relevance']!r} is not a raters' mean between 1 and 3; fix or drop the row"
        )
    return Judgment(query, product_id, homedepot_grade(mean))


HOMEDEPOT = DatasetAdapter(
    name="homedepot",
    summary="Home Depot (Kaggle 2016): real shopper queries, product titles, pairs graded 1-3 by 3+ raters",
    required_files=(PRODUCTS_FILE,),
    rows=homedepot_rows,
    to_product=homedepot_product,
    judgments=read_homedepot_judgments,
    judgments_file=JUDGMENTS_FILE,
    source_url="https://www.kaggle.com/c/home-depot-product-search-relevance (non-commercial terms)",
)
