"""SearchClient: encode the query, build the request for the chosen mode, send it, parse typed results."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable

from opensearchpy import OpenSearch
from opensearchpy.exceptions import TransportError

from tbhns_opensearch.cluster.connection import make_client
from tbhns_opensearch.config import OpenSearchConfig
from tbhns_opensearch.encoder import DEFAULT_ENCODER, Encoder
from tbhns_opensearch.errors import SearchError
from tbhns_opensearch.query.builders import Filters, build_bm25, build_knn


@dataclass(frozen=True)
class SearchHit:
    """One ranked product."""

    id: str
    score: float
    title: str
    category_path: tuple[str, ...]
    brand: str = ""
    price: float | None = None


@dataclass(frozen=True)
class SearchResponse:
    """Ranked hits and how they were produced."""

    hits: list[SearchHit]
    mode: str  # the mode that produced the hits
    took_ms: float
    fallback: bool = False  # True when the requested mode fell back to another (see fallback_reason)
    fallback_reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class SearchClient:
    """Run BM25 or semantic search against the product alias.

    Constructing it connects to nothing and loads no model; the first search does.

    Example:
        >>> client = SearchClient(OpenSearchConfig(url="http://127.0.0.1:9200"))
        >>> client.search("usb-c cable", mode="bm25", k=10)  # doctest: +SKIP
    """

    def __init__(
        self,
        opensearch: OpenSearchConfig,
        index: str = "products",
        encoder: str | Encoder = DEFAULT_ENCODER,
    ) -> None:
        self.opensearch = opensearch
        self.index = index
        self._encoder = encoder

    @cached_property
    def client(self) -> OpenSearch:
        return make_client(self.opensearch)

    @cached_property
    def encoder(self) -> Encoder:
        return self._encoder if isinstance(self._encoder, Encoder) else Encoder(self._encoder)

    @property
    def modes(self) -> dict[str, Callable[[str, int, Filters | None, int], dict[str, Any]]]:
        return {"bm25": self._bm25_body, "semantic": self._semantic_body}

    def search(self, query: str, mode: str = "bm25", k: int = 24, filters: Filters | None = None, offset: int = 0) -> SearchResponse:
        """Return the top `k` products for `query` in `mode`."""
        if mode not in self.modes:
            raise SearchError(f"unknown search mode {mode!r}; valid modes are {sorted(self.modes)}")
        body = self.modes[mode](query, k, filters, offset)
        started = time.perf_counter()
        raw = self._send(body)
        return SearchResponse(hits=parse_hits(raw), mode=mode, took_ms=(time.perf_counter() - started) * 1000)

    def _bm25_body(self, query: str, k: int, filters: Filters | None, offset: int) -> dict[str, Any]:
        return build_bm25(query, k, filters, offset)

    def _semantic_body(self, query: str, k: int, filters: Filters | None, offset: int) -> dict[str, Any]:
        return build_knn(self.encoder.encode([query])[0], k, filters, offset)

    def _send(self, body: dict[str, Any], **params: Any) -> dict[str, Any]:
        try:
            return self.client.search(index=self.index, body=body, params=params or None)
        except TransportError as exc:
            raise SearchError(f"search on {self.index} failed ({exc.status_code}): {exc.error}") from exc


def parse_hits(raw: dict[str, Any]) -> list[SearchHit]:
    """Typed hits from a raw OpenSearch search response."""
    hits = []
    for hit in raw["hits"]["hits"]:
        source = hit.get("_source", {})
        hits.append(
            SearchHit(
                id=hit["_id"],
                score=float(hit["_score"] or 0.0),
                title=source.get("title", ""),
                category_path=tuple(source.get("category_names") or ()),
                brand=source.get("brand", ""),
                price=source.get("price"),
            )
        )
    return hits
