"""Icecat electronics from the Chorus project: four zipped JSON arrays, prices in cents, typed attributes."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tbhns_opensearch.catalog.adapters.base import DatasetAdapter
from tbhns_opensearch.catalog.fields import is_missing, parse_id, parse_price, parse_text, parse_title
from tbhns_opensearch.catalog.judgments import read_judgments_csv
from tbhns_opensearch.catalog.product import Product
from tbhns_opensearch.catalog.stream import RawRow, RecordError
from tbhns_opensearch.errors import CatalogError

PRODUCT_FILES = tuple(f"products_{part}.json.zip" for part in range(1, 5))
ATTRIBUTE_PREFIXES = ("attr_t_", "attr_n_", "attr_b_")  # text, number, boolean


def icecat_rows(directory: Path) -> Iterator[RawRow]:
    """One raw row per element of the JSON arrays in `products_{1..4}.json.zip` (numbered from 1 per file)."""
    for name in PRODUCT_FILES:
        path = directory / name
        try:
            with zipfile.ZipFile(path) as archive:
                members = [m for m in archive.namelist() if m.endswith(".json")]
                arrays = [(f"{path}!{m}", json.loads(archive.read(m))) for m in members]
        except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CatalogError(f"{path}: not a zip of JSON arrays ({exc}); download the file again") from exc
        for source, array in arrays:
            if not isinstance(array, list):
                raise CatalogError(
                    f"{source}: holds a {type(array).__name__}, not a JSON array of products; download the file again"
                )
            for number, record in enumerate(array, start=1):
                if isinstance(record, dict):
                    yield RawRow(source, number, record)
                else:
                    yield RawRow(
                        source,
                        number,
                        error=RecordError("(record)", record, "array element is not an object", "remove the element"),
                    )


def icecat_product(record: dict[str, Any]) -> Product:
    """Convert one Icecat record: `supplier` is the brand, `price` is in cents, `attr_?_x` becomes `x`.

    When two typed attributes share a name (`attr_b_x` and `attr_n_x`) the later keeps its type letter
    (`x_n`). The model code (`name`) is kept as the attribute `name`. Icecat has no categories.

    Example:
        >>> p = icecat_product({"id": "1", "title": "Toner", "price": 4995, "attr_n_pack": 6.0, "supplier": "Xerox"})
        >>> p.price, p.brand, p.attributes
        (49.95, 'Xerox', {'pack': 6.0})
    """
    cents = parse_price(record.get("price"), "price")
    attributes: dict[str, Any] = {}
    if not is_missing(record.get("name")):
        attributes["name"] = parse_text(record["name"], "name")
    for key, value in record.items():
        prefix = key[:7]
        if prefix not in ATTRIBUTE_PREFIXES or is_missing(value):
            continue
        name = key[7:]
        attributes[name if name not in attributes else f"{name}_{prefix[5]}"] = value
    return Product(
        id=parse_id(record.get("id")),
        title=parse_title(record.get("title")),
        description=parse_text(record.get("short_description"), "short_description"),
        brand=parse_text(record.get("supplier"), "supplier"),
        attributes=attributes,
        price=None if cents is None else round(cents / 100, 2),
    )


ICECAT = DatasetAdapter(
    name="icecat",
    summary="Icecat electronics (Chorus): real titles, brands, attributes; 100 queries with graded judgments",
    required_files=PRODUCT_FILES,
    rows=icecat_rows,
    to_product=icecat_product,
    judgments=read_judgments_csv,  # the 100 Chorus queries: query, docid, rating 0-3
    judgments_file="judgments.csv",
    source_url="https://github.com/querqy/chorus (formerly o19s/chorus)",
)
