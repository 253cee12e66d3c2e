"""Instacart 2017 sample: product names under a department > aisle taxonomy.

Non-commercial terms: read it from the shared data folder; never commit it or anything derived from it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tbhns_opensearch.catalog.adapters.base import DatasetAdapter
from tbhns_opensearch.catalog.fields import parse_id, parse_text, parse_title
from tbhns_opensearch.catalog.product import Product
from tbhns_opensearch.catalog.readers import read_csv_rows
from tbhns_opensearch.catalog.stream import RawRow, RecordError
from tbhns_opensearch.errors import CatalogError
from tbhns_opensearch.textfiles import csv_rows

FILES = ("products.csv", "aisles.csv", "departments.csv")
UNKNOWN = "missing"  # Instacart's own name for "no department/aisle known"


def instacart_rows(directory: Path) -> Iterator[RawRow]:
    """Rows of `products.csv`, each with its `department` and `aisle` names joined in."""
    aisles = _names(directory / "aisles.csv", "aisle_id", "aisle")
    departments = _names(directory / "departments.csv", "department_id", "department")
    for row in read_csv_rows(directory / "products.csv"):
        if row.record is not None:
            record = {
                **row.record,
                "aisle": aisles.get(row.record.get("aisle_id", "")),
                "department": departments.get(row.record.get("department_id", "")),
            }
            row = RawRow(row.source, row.line, record)
        yield row


def instacart_product(record: dict[str, Any]) -> Product:
    """Convert one joined row; the path is (department, aisle), empty where Instacart says "missing".

    Example:
        >>> instacart_product({"product_id": "1", "product_name": "Chocolate Sandwich Cookies",
        ...                    "aisle_id": "61", "aisle": "cookies cakes", "department": "snacks"}).taxonomy_path
        ('snacks', 'cookies cakes')
    """
    for level in ("department", "aisle"):
        if record.get(level) is None:
            raise RecordError(
                f"{level}_id", record.get(f"{level}_id"), f"unknown {level} id", f"use an id listed in {level}s.csv"
            )
    path = (record["department"], record["aisle"])
    return Product(
        id=parse_id(record.get("product_id"), "product_id"),
        title=parse_title(record.get("product_name"), "product_name"),
        taxonomy_path=() if UNKNOWN in path else path,
    )


def _names(path: Path, id_column: str, name_column: str) -> dict[str, str]:
    rows = csv_rows(path, CatalogError, (id_column, name_column), "use the file as published by Instacart")
    return {row[id_column].strip(): parse_text(row[name_column]) for _, row in rows}


INSTACART = DatasetAdapter(
    name="instacart",
    summary="Instacart 2017 sample: real product names under department > aisle (non-commercial; never commit)",
    required_files=FILES,
    rows=instacart_rows,
    to_product=instacart_product,
    source_url="https://www.kaggle.com/c/instacart-market-basket-analysis",
)
