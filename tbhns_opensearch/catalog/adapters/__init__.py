"""Dataset adapters by name: turn a public set, as published, into a stream of products.

A set's folder is, in order: the `data_dir` argument, `$TBHNS_DATA_DIR/<name>`, or
`<repo>/../shared/data/<name>`.
"""

from __future__ import annotations

import os
from pathlib import Path

from tbhns_opensearch.catalog.adapters.amazon_uk_toys import AMAZON_UK_TOYS
from tbhns_opensearch.catalog.adapters.base import DatasetAdapter
from tbhns_opensearch.catalog.adapters.flipkart import FLIPKART
from tbhns_opensearch.catalog.adapters.homedepot import HOMEDEPOT
from tbhns_opensearch.catalog.adapters.icecat import ICECAT
from tbhns_opensearch.catalog.adapters.instacart import INSTACART
from tbhns_opensearch.catalog.adapters.wands import WANDS, WandsQuery, load_wands_queries
from tbhns_opensearch.catalog.judgments import Judgment
from tbhns_opensearch.catalog.stream import CatalogStream
from tbhns_opensearch.errors import CatalogError

DATA_DIR_ENV = "TBHNS_DATA_DIR"
_CHECKOUT = Path(__file__).resolve().parents[3]
DEFAULT_DATA_DIR = _CHECKOUT.parent / "shared" / "data" if (_CHECKOUT / "pyproject.toml").is_file() else Path("data")
"""Datasets' home when neither data_dir nor $TBHNS_DATA_DIR is given: ../shared/data beside a source checkout;
for an installed wheel, ./data in the current directory."""

ADAPTERS: dict[str, DatasetAdapter] = {
    adapter.name: adapter for adapter in (ICECAT, AMAZON_UK_TOYS, FLIPKART, HOMEDEPOT, INSTACART, WANDS)
}


def get_adapter(name: str) -> DatasetAdapter:
    """The adapter registered under `name`.

    Example:
        >>> get_adapter("icecat").required_files[0]
        'products_1.json.zip'
    """
    if name not in ADAPTERS:
        raise CatalogError(f"unknown dataset {name!r}; valid datasets are {sorted(ADAPTERS)}")
    return ADAPTERS[name]


def dataset_dir(name: str, data_dir: str | Path | None = None) -> Path:
    """The folder of set `name`: `data_dir` itself if given, else under $TBHNS_DATA_DIR, else shared/data.

    Example:
        >>> dataset_dir("wands", "/downloads/WANDS/dataset")
        PosixPath('/downloads/WANDS/dataset')
    """
    get_adapter(name)
    if data_dir is not None:
        return Path(data_dir)
    return data_root() / name


def data_root() -> Path:
    """The folder that holds the datasets: $TBHNS_DATA_DIR, else `DEFAULT_DATA_DIR`."""
    root = os.environ.get(DATA_DIR_ENV)
    return Path(root) if root else DEFAULT_DATA_DIR


def read_dataset(
    name: str, data_dir: str | Path | None = None, rejects_path: str | Path | None = None
) -> CatalogStream:
    """Stream the products of set `name`; rejects and counts are filled in as it is iterated.

    Args:
        name: One of `ADAPTERS`.
        data_dir: The set's folder; see `dataset_dir` for the default.
        rejects_path: Optional JSONL file that receives one line per rejected record.

    Example:
        >>> stream = read_dataset("amazon-uk-toys")  # doctest: +SKIP
        >>> sum(1 for p in stream if p.taxonomy_path), stream.counts  # doctest: +SKIP
        (9310, ReadCounts(read=10000, ok=10000, rejected=0))
    """
    adapter = get_adapter(name)
    directory = _checked_dir(adapter, dataset_dir(name, data_dir))
    return CatalogStream(lambda: adapter.rows(directory), adapter.to_product, rejects_path)


def load_judgments(name: str, data_dir: str | Path | None = None, path: str | Path | None = None) -> list[Judgment]:
    """Graded judgments of set `name` (icecat: 0-3; wands and homedepot: 0-2).

    Args:
        name: One of `ADAPTERS` with judgments.
        data_dir: The set's folder; see `dataset_dir` for the default.
        path: A judgments file in the set's layout (e.g. held-back test queries) instead of the set's own.

    Example:
        >>> len(load_judgments("icecat"))  # doctest: +SKIP
        2780
    """
    adapter = get_adapter(name)
    if adapter.judgments is None:
        with_judgments = sorted(n for n, a in ADAPTERS.items() if a.judgments is not None)
        raise CatalogError(f"dataset {name!r} has no relevance judgments; sets with judgments: {with_judgments}")
    return adapter.judgments(Path(path) if path else dataset_dir(name, data_dir) / adapter.judgments_file)


def _checked_dir(adapter: DatasetAdapter, directory: Path) -> Path:
    missing = [f for f in adapter.required_files if not (directory / f).is_file()]
    if missing:
        raise CatalogError(
            f"dataset {adapter.name!r}: {missing} not found in {str(directory)!r}; download it from "
            f"{adapter.source_url} and pass its folder as data_dir, or set ${DATA_DIR_ENV} to the folder "
            f"holding '{adapter.name}/'"
        )
    return directory


__all__ = [
    "ADAPTERS",
    "DATA_DIR_ENV",
    "DatasetAdapter",
    "data_root",
    "WandsQuery",
    "dataset_dir",
    "get_adapter",
    "load_judgments",
    "load_wands_queries",
    "read_dataset",
]
