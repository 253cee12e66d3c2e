"""What a search takes and gives: the validated request, typed hits and responses, and hit parsing.

Example:
    >>> raw = {"hits": {"hits": [{"_id": "p1", "_score": 2.5, "fields": {"title": ["USB-C cable"]}}]}}
    >>> [(hit.id, hit.score, hit.title) for hit in parse_hits(raw)]
    [('p1', 2.5, 'USB-C cable')]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tbhns_opensearch.index.documents import MAX_LEVELS, decode_text
from tbhns_opensearch.query.builders import Filters

MODES = ("bm25", "semantic", "personalized", "hybrid")
"""The search modes by name (`SearchClient.search`)."""
USER_MODES = ("personalized", "hybrid")
"""The modes that read the user's profile when a search names a user."""


@dataclass(frozen=True)
class SearchHit:
    """One ranked product; `parts` holds the raw BM25 and vector scores when `explain` was asked for
    (a part is missing when that sub-query did not retrieve the product)."""

    id: str
    score: float
    title: str
    category_path: tuple[str, ...]
    brand: str = ""
    price: float | None = None
    parts: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchResponse:
    """Ranked hits and how they were produced.

    Args:
        hits: Best first.
        mode: The mode that produced the hits ("semantic" when "personalized" fell back).
        requested_mode: The mode asked for.
        took_ms: Wall time of the whole search (encoding, user lookup, requests).
        fallback: True when the user's vector was not used although a personalized mode or a user was
            asked for; `fallback_reason` says why.
        fallback_reason: Why it fell back, else None.
        path: "server" or "client" for hybrid, else None.
        alpha: The user's weight actually applied: the blend's alpha, or the learned model's attention weight on
            the history (0.0 without personalization).
        personalization: How the user personalized the query vector: "learned" (the user model and the stored
            history) or "blend"; None when no user vector was used.
    """

    hits: list[SearchHit]
    mode: str
    requested_mode: str
    took_ms: float
    fallback: bool = False
    fallback_reason: str | None = None
    path: str | None = None
    alpha: float = 0.0
    personalization: str | None = None


@dataclass(frozen=True)
class SearchRequest:
    """A validated search; `text` is already clipped."""

    text: str
    user_id: str | None
    k: int
    filters: Filters | None
    offset: int
    explain: bool
    path: str


@dataclass(frozen=True)
class ClusterHealth:
    """What `/health` reports about the cluster."""

    status: str  # green, yellow or red
    version: str
    server_hybrid: bool  # neural-search present: hybrid runs server-side on path "auto"
    index: str  # the product alias
    index_exists: bool


def parse_hits(raw: dict[str, Any], part: str | None = None) -> list[SearchHit]:
    """Typed hits from a raw OpenSearch search response; `part` names the score in `parts` (explain)."""
    hits = []
    for hit in raw["hits"]["hits"]:
        score = float(hit["_score"] or 0.0)
        fields = hit.get("fields", {})
        product_id = hit["_id"] if "_id" in hit else fields["product_id"][0]  # ids_only: from doc values
        hits.append(hit_from_fields(product_id, score, fields, {part: score} if part else {}))
    return hits


def hit_from_fields(product_id: str, score: float, fields: dict[str, list[Any]], parts: dict[str, float]) -> SearchHit:
    """A hit from its stored fields or their doc values (`DISPLAY_DOC_VALUES`; OpenSearch returns each as a
    list, a float's doc value as the float32 widened to a double: its shortest float32 form is the value written)."""
    levels = (f"category_levels.l{level}" for level in range(MAX_LEVELS))  # read only when no stored path came
    price = (fields.get("price") or [None])[0]
    return SearchHit(
        id=product_id,
        score=score,
        title=fields["title"][0] if "title" in fields else decode_text((fields.get("title_bytes") or [""])[0]),
        category_path=tuple(fields.get("category_names") or (fields[name][0] for name in levels if name in fields)),
        brand=(fields.get("brand") or fields.get("brand.raw") or [""])[0],
        price=None if price is None else float(str(np.float32(price))),
        parts=parts,
    )


def score_parts(sub_results: Sequence[list[SearchHit]]) -> dict[str, dict[str, float]]:
    """Product id -> {"bm25": raw score, "vector": raw score}, for the products each sub-query retrieved.

    Example:
        >>> score_parts(([SearchHit("p1", 7.0, "", ())], [SearchHit("p1", 0.8, "", ())]))
        {'p1': {'bm25': 7.0, 'vector': 0.8}}
    """
    parts: dict[str, dict[str, float]] = {}
    for name, hits in zip(("bm25", "vector"), sub_results):
        for hit in hits:
            parts.setdefault(hit.id, {})[name] = hit.score
    return parts
