"""Pure builders of OpenSearch request bodies: one function per mode, all sharing the same filters.

User text only ever reaches `multi_match` (no query syntax, so no parse errors and no access to other
fields) and is clipped so a 10 kB paste cannot exceed the clause limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from tbhns_opensearch.index.documents import category_path_value

BM25_FIELDS = ("title^3", "brand^2", "category_names^1.5", "attributes_text", "description")
SOURCE_FIELDS = ("product_id", "title", "brand", "category_names", "price")
MAX_QUERY_CHARS = 512
MAX_QUERY_TERMS = 64


@dataclass(frozen=True)
class Filters:
    """Restrictions every mode applies (inside the knn clause for vector search).

    Example:
        >>> Filters(category=("Electronics", "Cables"), price_max=20.0).is_empty
        False
    """

    category: tuple[str, ...] = ()  # taxonomy path prefix, any depth
    price_min: float | None = None
    price_max: float | None = None
    brands: tuple[str, ...] = ()  # any of these brands (case-insensitive)
    attributes: tuple[str, ...] = field(default=())  # "name=value" terms, all required

    @property
    def is_empty(self) -> bool:
        return not (self.category or self.brands or self.attributes) and self.price_min is None and self.price_max is None


def clip_query_text(text: str) -> str:
    """Collapse whitespace and keep at most MAX_QUERY_CHARS characters and MAX_QUERY_TERMS terms.

    Example:
        >>> clip_query_text("  usb   cable ")
        'usb cable'
    """
    return " ".join(text[: MAX_QUERY_CHARS * 4].split()[:MAX_QUERY_TERMS])[:MAX_QUERY_CHARS]


def filter_clauses(filters: Filters | None) -> list[dict[str, Any]]:
    """The bool `filter` clauses for `filters` (empty list when there are none)."""
    if filters is None:
        return []
    clauses: list[dict[str, Any]] = []
    if filters.category:
        clauses.append({"term": {"category_path": category_path_value(filters.category)}})
    if filters.price_min is not None or filters.price_max is not None:
        bounds = {"gte": filters.price_min, "lte": filters.price_max}
        clauses.append({"range": {"price": {key: value for key, value in bounds.items() if value is not None}}})
    if filters.brands:
        clauses.append({"terms": {"brand.keyword": [brand.lower() for brand in filters.brands]}})
    clauses.extend({"term": {"attribute_terms": term.lower()}} for term in filters.attributes)
    return clauses


def build_bm25(text: str, size: int, filters: Filters | None = None, offset: int = 0) -> dict[str, Any]:
    """A BM25 `multi_match` over the product text fields.

    Example:
        >>> build_bm25("usb cable", 10)["query"]["bool"]["must"][0]["multi_match"]["query"]
        'usb cable'
    """
    match = {"multi_match": {"query": clip_query_text(text), "fields": list(BM25_FIELDS), "type": "best_fields", "tie_breaker": 0.3}}
    return {
        "size": size,
        "from": offset,
        "_source": list(SOURCE_FIELDS),
        "query": {"bool": {"must": [match], "filter": filter_clauses(filters)}},
    }


def build_knn(vector: Sequence[float], size: int, filters: Filters | None = None, offset: int = 0) -> dict[str, Any]:
    """A `knn` query on the product vector with filters inside the clause (efficient filtering, no starvation).

    Example:
        >>> build_knn([0.1, 0.2], 5, Filters(brands=("ACME",)))["query"]["knn"]["embedding"]["filter"]
        {'bool': {'filter': [{'terms': {'brand.keyword': ['acme']}}]}}
    """
    knn: dict[str, Any] = {"vector": [float(x) for x in vector], "k": size + offset}
    clauses = filter_clauses(filters)
    if clauses:
        knn["filter"] = {"bool": {"filter": clauses}}
    return {"size": size, "from": offset, "_source": list(SOURCE_FIELDS), "query": {"knn": {"embedding": knn}}}
