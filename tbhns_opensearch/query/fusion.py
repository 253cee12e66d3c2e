"""Hybrid fusion of a BM25 and a vector result list, identical on the client and in OpenSearch's pipeline.

Each method in `FUSIONS` has a client-side `fuse` and the body of the search pipeline that does the same
server-side, so both paths rank alike for the same weights on the same data. The client side replays
OpenSearch 2.19's float32 arithmetic (neural-search `MinMaxScoreNormalizationTechnique`,
`ArithmeticMeanScoreCombinationTechnique`, `RRFNormalizationTechnique`, `RRFScoreCombinationTechnique`):

- `minmax`: per sub-query, over the documents that sub-query retrieved (its top `depth`),
  n = (s - min) / (max - min), a 0 becomes 0.001, and n = 1 when max == min; a document a sub-query did not
  retrieve has n = 0 there. Combined: sum_i(w_i * n_i) / sum_i(w_i) over all sub-queries (weighted
  arithmetic mean; OpenSearch requires weights in [0, 1] summing to 1).
- `rrf`: per sub-query, 1 / (rank_constant + rank) with rank from 1, rounded half-up to 10 decimals;
  summed over sub-queries (absent: 0). OpenSearch 2.19's RRF takes no weights, so neither does ours.

Ties (equal fused scores) keep the order of first appearance (BM25 list first); OpenSearch orders ties by
internal doc id, so tied documents may swap between the paths.

Example:
    >>> fuse([[("a", 3.0), ("b", 1.0)], [("b", 0.9), ("c", 0.5)]], HybridConfig(fusion="rrf"))[0]
    ('b', 0.032522473484277725)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np

from tbhns_opensearch.errors import SearchError

RankedList = Sequence[tuple[str, float]]  # (product id, raw score), best first
HYBRID_PATHS = ("auto", "server", "client")
MIN_SCORE = np.float32(0.001)  # min-max: what a normalized 0 becomes
SINGLE_RESULT_SCORE = np.float32(1.0)  # min-max: the score when max == min
WEIGHT_SUM_TOLERANCE = 0.01  # OpenSearch's tolerance on the sum of weights


def bm25_weighted(bm25_weight: float) -> tuple[float, float]:
    """Min-max weights (bm25, vector) from the BM25 weight alone; the two sum to 1.

    Example:
        >>> bm25_weighted(0.7)
        (0.7, 0.3)
    """
    return bm25_weight, round(1.0 - bm25_weight, 6)


@dataclass(frozen=True)
class HybridConfig:
    """How hybrid search combines BM25 and the vector query.

    Args:
        fusion: A name in `FUSIONS`: "minmax" (weighted mean of min-max normalized scores) or "rrf".
        weights: (bm25, vector) weights for minmax, each in [0, 1], summing to 1; RRF ignores them.
        rank_constant: RRF's k in 1 / (k + rank).
        depth: Candidates each sub-query retrieves (OpenSearch `pagination_depth`), raised to a page's end.
            The defaults, depth 24 with weights (0.6, 0.4), were chosen together on validation queries within
            a latency budget (docs/performance.md).
        path: "server" (hybrid query + search pipeline), "client" (two queries fused here) or "auto"
            (server when the cluster has neural-search).

    Example:
        >>> HybridConfig(fusion="rrf", path="client").rank_constant
        60
    """

    fusion: str = field(
        default="minmax",
        metadata={"help": "hybrid fusion: minmax (weighted mean of min-max normalized scores) or rrf"},
    )
    weights: tuple[float, float] = field(
        default=(0.6, 0.4), metadata={"help": "minmax: (bm25, vector) weights, summing to 1; rrf ignores them"}
    )
    rank_constant: int = field(default=60, metadata={"help": "rrf: k in 1 / (k + rank)"})
    depth: int = field(default=24, metadata={"help": "candidates per hybrid sub-query, raised to the page's end"})
    path: str = field(
        default="auto",
        metadata={
            "help": "where hybrid search fuses: server (hybrid query and search pipeline), client (two queries "
            "fused here) or auto (server when the cluster has neural-search)"
        },
    )

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise SearchError(f"unknown fusion {self.fusion!r}; valid fusions are {sorted(FUSIONS)}")
        if self.path not in HYBRID_PATHS:
            raise SearchError(f"unknown hybrid path {self.path!r}; valid paths are {list(HYBRID_PATHS)}")
        weights = tuple(float(weight) for weight in self.weights)
        if (
            len(weights) != 2
            or any(not 0.0 <= w <= 1.0 for w in weights)
            or abs(sum(weights) - 1.0) > WEIGHT_SUM_TOLERANCE
        ):
            raise SearchError(
                f"hybrid weights must be two numbers (bm25, vector) in [0, 1] summing to 1, "
                f"got {self.weights!r}; e.g. (0.3, 0.7)"
            )
        object.__setattr__(self, "weights", weights)
        if self.rank_constant < 1 or not 1 <= self.depth <= 10_000:
            raise SearchError(
                f"rank_constant must be >= 1 and depth in [1, 10000], got {self.rank_constant} and {self.depth}"
            )


@dataclass(frozen=True)
class Fusion:
    """A fusion method: the client-side function and the search pipeline body that does the same."""

    fuse: Callable[[Sequence[RankedList], HybridConfig], list[tuple[str, float]]]
    pipeline: Callable[[HybridConfig], dict[str, Any]]


def minmax_fuse(results: Sequence[RankedList], config: HybridConfig) -> list[tuple[str, float]]:
    """Weighted arithmetic mean of min-max normalized scores, as OpenSearch's normalization-processor.

    Example:
        >>> minmax_fuse([[("a", 4.0), ("b", 2.0)], [("b", 0.9)]], HybridConfig(weights=(0.5, 0.5)))
        [('b', 0.5005000233650208), ('a', 0.5)]
    """
    weights = [np.float32(weight) for weight in config.weights]
    normalized: dict[str, list[np.float32]] = {}
    for index, ranked in enumerate(results):
        scores = [np.float32(score) for _, score in ranked]
        low, high = (min(scores), max(scores)) if scores else (np.float32(0), np.float32(0))
        for (product_id, _), score in zip(ranked, scores):
            normalized.setdefault(product_id, [np.float32(0)] * len(results))[index] = _min_max(score, low, high)
    weight_sum = np.float32(0)
    for weight in weights:
        weight_sum = np.float32(weight_sum + weight)
    fused = []
    for product_id, parts in normalized.items():
        total = np.float32(0)
        for part, weight in zip(parts, weights):
            total = np.float32(total + np.float32(part * weight))
        fused.append((product_id, float(np.float32(total / weight_sum))))
    return _ranked(fused)


def rrf_fuse(results: Sequence[RankedList], config: HybridConfig) -> list[tuple[str, float]]:
    """Reciprocal rank fusion, as OpenSearch's score-ranker-processor: sum of 1 / (rank_constant + rank).

    Example:
        >>> rrf_fuse([[("a", 9.0), ("b", 1.0)], [("b", 0.7)]], HybridConfig(fusion="rrf"))
        [('b', 0.032522473484277725), ('a', 0.016393441706895828)]
    """
    fused: dict[str, np.float32] = {}
    for ranked in results:
        for rank, (product_id, _) in enumerate(ranked, start=1):
            share = np.float32(
                float(
                    (Decimal(1) / Decimal(config.rank_constant + rank)).quantize(
                        Decimal("1e-10"), rounding=ROUND_HALF_UP
                    )
                )
            )
            fused[product_id] = np.float32(fused.get(product_id, np.float32(0)) + share)
    return _ranked([(product_id, float(score)) for product_id, score in fused.items()])


def minmax_pipeline(config: HybridConfig) -> dict[str, Any]:
    """Search pipeline body: min_max normalization + weighted arithmetic_mean (pure).

    Example:
        >>> minmax_pipeline(HybridConfig())["phase_results_processors"][0]["normalization-processor"]["combination"]
        {'technique': 'arithmetic_mean', 'parameters': {'weights': [0.6, 0.4]}}
    """
    return {
        "description": "tbhns hybrid: min-max normalized BM25 and vector scores, weighted arithmetic mean",
        "phase_results_processors": [
            {
                "normalization-processor": {
                    "normalization": {"technique": "min_max"},
                    "combination": {"technique": "arithmetic_mean", "parameters": {"weights": list(config.weights)}},
                }
            }
        ],
    }


def rrf_pipeline(config: HybridConfig) -> dict[str, Any]:
    """Search pipeline body: RRF via the score-ranker-processor (neural-search >= 2.19) (pure).

    Example:
        >>> rrf_pipeline(HybridConfig(fusion="rrf"))["phase_results_processors"][0]
        {'score-ranker-processor': {'combination': {'technique': 'rrf', 'rank_constant': 60}}}
    """
    return {
        "description": "tbhns hybrid: reciprocal rank fusion of BM25 and vector ranks",
        "phase_results_processors": [
            {"score-ranker-processor": {"combination": {"technique": "rrf", "rank_constant": config.rank_constant}}}
        ],
    }


FUSIONS: dict[str, Fusion] = {
    "minmax": Fusion(fuse=minmax_fuse, pipeline=minmax_pipeline),
    "rrf": Fusion(fuse=rrf_fuse, pipeline=rrf_pipeline),
}


def fuse(results: Sequence[RankedList], config: HybridConfig) -> list[tuple[str, float]]:
    """Fuse ranked lists (BM25 first, then vector) with `config.fusion`; best first."""
    return FUSIONS[config.fusion].fuse(results, config)


def search_pipeline(config: HybridConfig) -> tuple[str, dict[str, Any]]:
    """The name and body of the search pipeline for `config`; the name carries a hash of the body, so
    different settings never share a pipeline (pure).

    Example:
        >>> search_pipeline(HybridConfig(fusion="rrf"))[0].startswith("tbhns-hybrid-rrf-")
        True
    """
    body = FUSIONS[config.fusion].pipeline(config)
    digest = hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest()[:10]
    return f"tbhns-hybrid-{config.fusion}-{digest}", body


def _min_max(score: np.float32, low: np.float32, high: np.float32) -> np.float32:
    if high == low:
        return SINGLE_RESULT_SCORE
    normalized = np.float32(np.float32(score - low) / np.float32(high - low))
    return MIN_SCORE if normalized == 0 else normalized


def _ranked(fused: list[tuple[str, float]]) -> list[tuple[str, float]]:
    return sorted(fused, key=lambda item: -item[1])  # stable: ties keep first appearance
