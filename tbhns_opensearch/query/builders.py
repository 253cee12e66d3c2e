"""Pure builders of OpenSearch request bodies: one function per mode, all sharing the same filters.

User text only ever reaches `multi_match` (no query syntax, so no parse errors and no access to other
fields) and is clipped so a 10 kB paste cannot exceed the clause limit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tbhns_opensearch.errors import SearchError
from tbhns_opensearch.index.documents import MAX_LEVELS, category_path_value

BM25_FIELDS = ("title^3", "brand^2", "category_names^1.5", "attributes_text", "description")
SOURCE_FIELDS = ("title", "brand", "category_names", "price")
"""Returned as stored fields: parsing each hit's `_source` (with its 384-float vector) dominated latency."""
DISPLAY_DOC_VALUES = (
    "product_id",
    "title_bytes",
    "brand.raw",
    "price",
    *(f"category_levels.l{level}" for level in range(MAX_LEVELS)),
)
"""The same display fields read from doc values (`display_from_doc_values`; indices made before `title_bytes`
was in the template lack it, and are read with stored fields instead)."""
MAX_QUERY_CHARS = 512
MAX_QUERY_TERMS = 64
MAX_PRICE = float(np.finfo(np.float32).max)  # the price field is a float: larger bounds make the cluster answer 400


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

    def __post_init__(self) -> None:
        if self.price_min is not None and self.price_max is not None and self.price_min > self.price_max:
            raise SearchError(f"price range {self.price_min}..{self.price_max} is empty; give min <= max")
        if any(not part.strip() for part in self.category):
            raise SearchError(f"category path {self.category!r} has an empty level; write levels as A>B>C")
        if any("=" not in term for term in self.attributes):
            raise SearchError(f"attribute filters must be name=value terms, got {list(self.attributes)}")

    @property
    def is_empty(self) -> bool:
        return (
            not (self.category or self.brands or self.attributes) and self.price_min is None and self.price_max is None
        )


def _category_spec(value: str, fields: dict[str, Any]) -> None:
    if fields.get("category"):
        raise SearchError(
            f"give at most one category filter, got {' and '.join(['>'.join(fields['category']), value])}"
        )
    fields["category"] = tuple(part.strip() for part in value.split(">"))


def _price_spec(value: str, fields: dict[str, Any]) -> None:
    low, separator, high = value.partition("..")
    try:
        bounds = [float(bound) if bound.strip() else None for bound in (low, high)]
    except ValueError:
        bounds = []
    finite = all(bound is None or (math.isfinite(bound) and abs(bound) <= MAX_PRICE) for bound in bounds)
    if not separator or len(bounds) != 2 or bounds == [None, None] or not finite:
        raise SearchError(
            f"price filter {value!r} must be MIN..MAX, MIN.. or ..MAX with finite numbers within "
            f"±{MAX_PRICE:.1e} (a float32), e.g. price=10..50"
        )
    fields["price_min"], fields["price_max"] = bounds


def _brand_spec(value: str, fields: dict[str, Any]) -> None:
    fields["brands"] = (*fields.get("brands", ()), value.strip())


def _attribute_spec(value: str, fields: dict[str, Any]) -> None:
    name, separator, term = value.partition("=")
    if not separator or not name.strip() or not term.strip():
        raise SearchError(f"attribute filter {value!r} must be attr=NAME=VALUE, e.g. attr=colour=red")
    fields["attributes"] = (*fields.get("attributes", ()), f"{name.strip()}={term.strip()}")


FILTER_SPECS: dict[str, Callable[[str, dict[str, Any]], None]] = {
    "category": _category_spec,  # category=Toys>Puzzles (taxonomy path prefix, any depth)
    "price": _price_spec,  # price=10..50, price=10.., price=..50
    "brand": _brand_spec,  # brand=Lego (repeat for any of several brands)
    "attr": _attribute_spec,  # attr=colour=red (repeat: all required)
}
"""Filter specs as the CLI and the HTTP API take them (NAME=VALUE), by name."""


def parse_filters(specs: Sequence[str]) -> Filters | None:
    """Turn NAME=VALUE specs (`FILTER_SPECS`) into `Filters`; None when there are none.

    Example:
        >>> parse_filters(["category=Toys>Puzzles", "price=..20", "brand=Ravensburger"])
        Filters(category=('Toys', 'Puzzles'), price_min=None, price_max=20.0, brands=('Ravensburger',), attributes=())
    """
    fields: dict[str, Any] = {}
    for spec in specs:
        name, separator, value = spec.partition("=")
        if not separator or name.strip() not in FILTER_SPECS or not value.strip():
            raise SearchError(
                f"filter {spec!r} is not NAME=VALUE with a known name; valid names are "
                f"{list(FILTER_SPECS)} (e.g. category=A>B, price=10..50, brand=X, attr=name=value)"
            )
        FILTER_SPECS[name.strip()](value.strip(), fields)
    return Filters(**fields) if fields else None


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


def bm25_query(text: str, filters: Filters | None = None) -> dict[str, Any]:
    """The BM25 query clause: `multi_match` over the product text fields, filters in a bool `filter`.

    Example:
        >>> bm25_query("usb cable")["bool"]["must"][0]["multi_match"]["query"]
        'usb cable'
    """
    match = {
        "multi_match": {
            "query": clip_query_text(text),
            "fields": list(BM25_FIELDS),
            "type": "best_fields",
            "tie_breaker": 0.3,
        }
    }
    return {"bool": {"must": [match], "filter": filter_clauses(filters)}}


def knn_query(vector: Sequence[float] | np.ndarray, k: int, filters: Filters | None = None) -> dict[str, Any]:
    """The `knn` query clause on the product vector, filters inside it (efficient filtering, no starvation).
    A numpy vector stays a (contiguous float32) array, which the client's serializer writes in float32's
    shortest form (`FastJSONSerializer`: ~40% fewer bytes, no Python floats built); a sequence becomes floats.

    Example:
        >>> knn_query([0.1, 0.2], 5, Filters(brands=("ACME",)))["knn"]["embedding"]["filter"]
        {'bool': {'filter': [{'terms': {'brand.keyword': ['acme']}}]}}
        >>> knn_query(np.array([0.5, 0.25]), 5)["knn"]["embedding"]["vector"].dtype
        dtype('float32')
    """
    values = (
        np.ascontiguousarray(vector, dtype=np.float32) if isinstance(vector, np.ndarray) else [float(x) for x in vector]
    )
    knn: dict[str, Any] = {"vector": values, "k": k}
    clauses = filter_clauses(filters)
    if clauses:
        knn["filter"] = {"bool": {"filter": clauses}}
    return {"knn": {"embedding": knn}}


def neural_query(text: str, model_id: str, k: int, filters: Filters | None = None) -> dict[str, Any]:
    """The `neural` query clause: the cluster embeds `text` with the deployed model `model_id` (`tbhns deploy`)
    and searches the product vector like `knn_query`, filters inside it.

    Example:
        >>> neural_query("usb cable", "m1", 5)["neural"]["embedding"]
        {'query_text': 'usb cable', 'model_id': 'm1', 'k': 5}
    """
    neural: dict[str, Any] = {"query_text": clip_query_text(text), "model_id": model_id, "k": k}
    clauses = filter_clauses(filters)
    if clauses:
        neural["filter"] = {"bool": {"filter": clauses}}
    return {"neural": {"embedding": neural}}


def build_bm25(text: str, size: int, filters: Filters | None = None, offset: int = 0) -> dict[str, Any]:
    """A BM25 search request (see `bm25_query`).

    Example:
        >>> build_bm25("usb cable", 10)["size"]
        10
    """
    return _request(bm25_query(text, filters), size, offset)


def build_knn(
    vector: Sequence[float] | np.ndarray, size: int, filters: Filters | None = None, offset: int = 0
) -> dict[str, Any]:
    """A vector search request: `knn` with k = offset + size, so every page is among the k nearest.

    Example:
        >>> build_knn([0.1, 0.2], 5, offset=5)["query"]["knn"]["embedding"]["k"]
        10
    """
    return _request(knn_query(vector, size + offset, filters), size, offset)


def build_neural(
    text: str, model_id: str, size: int, filters: Filters | None = None, offset: int = 0
) -> dict[str, Any]:
    """A vector search request embedded by the cluster (`neural_query`), paged like `build_knn`.

    Example:
        >>> build_neural("usb cable", "m1", 5, offset=5)["query"]["neural"]["embedding"]["k"]
        10
    """
    return _request(neural_query(text, model_id, size + offset, filters), size, offset)


def build_hybrid(
    text: str,
    vector: Sequence[float] | np.ndarray | None,
    size: int,
    depth: int,
    filters: Filters | None = None,
    offset: int = 0,
    model_id: str | None = None,
) -> dict[str, Any]:
    """A `hybrid` query of the BM25 and knn clauses (in that order), each retrieving `depth` candidates; with
    `model_id` the vector clause is `neural_query` (the cluster embeds the text) and `vector` is not used.

    Send it with a search pipeline (`fusion.search_pipeline`) that normalizes and combines the two scores.
    `pagination_depth` fixes each sub-query's candidate set, so pages are consistent and the client-side
    fusion can reproduce it; `from + size` must not exceed it.

    Example:
        >>> body = build_hybrid("usb cable", [0.1, 0.2], 10, depth=100)
        >>> hybrid = body["query"]["hybrid"]
        >>> [next(iter(clause)) for clause in hybrid["queries"]], hybrid["pagination_depth"]
        (['bool', 'knn'], 100)
    """
    if offset + size > depth:
        raise SearchError(f"offset + k = {offset + size} exceeds the hybrid depth {depth}; raise HybridConfig.depth")
    if model_id is not None:
        semantic = neural_query(text, model_id, depth, filters)
    elif vector is not None:
        semantic = knn_query(vector, depth, filters)
    else:
        raise SearchError("a hybrid query needs the query vector or the model_id of a deployed encoder")
    hybrid = {"queries": [bm25_query(text, filters), semantic], "pagination_depth": depth}
    return _request({"hybrid": hybrid}, size, offset)


def ids_only(body: dict[str, Any]) -> dict[str, Any]:
    """`body` returning scores and product ids only, the ids from `product_id` doc values. On a single
    shard OpenSearch fetches a hybrid query's hits for all `pagination_depth` candidates before fusing them,
    and loading even `_id` from stored fields costs a compressed-block read per hit, most of hybrid's
    latency; read the fields of the final page afterwards instead (one `mget`).

    Example:
        >>> body = ids_only(build_bm25("usb cable", 10))
        >>> body["stored_fields"], body["docvalue_fields"]
        ('_none_', ['product_id'])
    """
    return {**body, "_source": False, "stored_fields": "_none_", "docvalue_fields": ["product_id"]}


def display_from_doc_values(body: dict[str, Any]) -> dict[str, Any]:
    """`body` returning each hit's id and display fields from doc values, no stored field: a single-shard
    hybrid query fetches all `pagination_depth` candidates, and doc values cost far less per hit than a stored
    fields block, so the page needs no second request. The title comes from `title_bytes` (binary): for 200
    hybrid candidates it costs ~0.5 ms where a keyword's terms-dictionary lookups cost ~1.6 ms.

    Example:
        >>> body = display_from_doc_values(build_bm25("usb cable", 10))
        >>> body["stored_fields"], body["docvalue_fields"][:4]
        ('_none_', ['product_id', 'title_bytes', 'brand.raw', 'price'])
    """
    return {**body, "_source": False, "stored_fields": "_none_", "docvalue_fields": list(DISPLAY_DOC_VALUES)}


def _request(query: dict[str, Any], size: int, offset: int) -> dict[str, Any]:
    return {"size": size, "from": offset, "_source": False, "stored_fields": list(SOURCE_FIELDS), "query": query}
