"""What a dataset adapter is: the files it needs, its raw rows, and the conversion of one row."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tbhns_opensearch.catalog.judgments import Judgment
from tbhns_opensearch.catalog.product import Product
from tbhns_opensearch.catalog.stream import RawRow


@dataclass(frozen=True)
class DatasetAdapter:
    """Turns one public data set, as published, into products (and judgments where it has them).

    Args:
        name: Registry name, also the folder name under the data directory.
        summary: One line: what is real in this set.
        required_files: Files the product rows need, relative to the set's folder.
        rows: Folder -> raw rows (joins lookup tables, so `to_product` needs nothing else).
        to_product: One raw record -> `Product`; raises `RecordError` for a bad one.
        judgments: Judgments file (in the set's layout) -> graded judgments, or None when the set has none.
        judgments_file: The judgments file's name in the set's folder.
        source_url: Where a user can download the set.
    """

    name: str
    summary: str
    required_files: tuple[str, ...]
    rows: Callable[[Path], Iterator[RawRow]]
    to_product: Callable[[dict[str, Any]], Product]
    judgments: Callable[[Path], list[Judgment]] | None = None
    judgments_file: str = ""
    source_url: str = ""
