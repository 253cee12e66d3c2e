"""The catalog: the canonical `Product`, file readers, dataset adapters and relevance judgments."""

from tbhns_opensearch.catalog.judgments import Judgment, read_judgments_csv, write_judgments_csv
from tbhns_opensearch.catalog.mapping import ColumnMapping
from tbhns_opensearch.catalog.product import Product
from tbhns_opensearch.catalog.readers import read_catalog, write_catalog_jsonl
from tbhns_opensearch.catalog.stream import CatalogStream, ReadCounts, Reject

__all__ = [
    "CatalogStream",
    "ColumnMapping",
    "Judgment",
    "Product",
    "ReadCounts",
    "Reject",
    "read_catalog",
    "read_judgments_csv",
    "write_catalog_jsonl",
    "write_judgments_csv",
]
