"""Exact in-memory retrieval with the model being trained: validation metrics and ANCE re-mining.

`ExactIndex` scores every product by cosine (a matrix product of unit vectors, numpy), so there is no
approximation error to confuse with training effects. It is meant for catalogs up to ~20k products
(20k x 384 float32 is 30 MB; a query batch costs one (q, 20k) product); use OpenSearch k-NN beyond that.

Example:
    >>> index = ExactIndex(("a", "b"), np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32))
    >>> index.search(np.array([[0.6, 0.8]], dtype=np.float32), k=1)
    [['b']]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tbhns_opensearch.catalog import Product
from tbhns_opensearch.encoder import PROGRESS_CHUNK
from tbhns_opensearch.errors import TrainingError
from tbhns_opensearch.eval.metrics import Evaluation, MetricConfig, evaluate

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from tbhns_opensearch.training.data import EvalSet

ENCODE_BATCH = 64
EVAL_DEPTH = 100  # hits per query in validation runs (the deepest metric cut-off)
_QUERY_CHUNK = 1024  # queries scored per matrix product


@dataclass(frozen=True)
class ExactIndex:
    """Exact cosine search over the unit rows of `vectors`, aligned with `ids`."""

    ids: tuple[str, ...]
    vectors: np.ndarray  # (n, dim), unit rows

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.ids):
            raise TrainingError(f"vectors have shape {self.vectors.shape}, expected ({len(self.ids)}, dim)")

    def search_scored(self, queries: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        """The top `k` (id, cosine) per query row of `queries` (shape (q, dim), unit rows), best first."""
        k = min(k, len(self.ids))
        results: list[list[tuple[str, float]]] = []
        for start in range(0, len(queries), _QUERY_CHUNK):
            scores = queries[start : start + _QUERY_CHUNK] @ self.vectors.T  # (chunk, n)
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # (chunk, k), unordered
            for row, candidates in zip(scores, top):
                ranked = candidates[np.lexsort((candidates, -row[candidates]))]  # score desc, then row
                results.append([(self.ids[i], float(row[i])) for i in ranked])
        return results

    def search(self, queries: np.ndarray, k: int) -> list[list[str]]:
        """The top `k` ids per query row, best first."""
        return [[pid for pid, _ in hits] for hits in self.search_scored(queries, k)]


def encode_texts(model: SentenceTransformer, texts: Sequence[str]) -> np.ndarray:
    """Unit vectors of shape (len(texts), dim) from the model as it is now (no gradient)."""
    vectors = model.encode(
        list(texts),
        batch_size=ENCODE_BATCH,
        convert_to_numpy=True,
        normalize_embeddings=True,
        show_progress_bar=len(texts) > PROGRESS_CHUNK,
    )
    return np.asarray(vectors, dtype=np.float32)


def product_index(model: SentenceTransformer, products: Sequence[Product]) -> ExactIndex:
    """Encode the catalog (`Product.text_for_embedding`, as ingest does) into an `ExactIndex`."""
    return ExactIndex(tuple(p.id for p in products), encode_texts(model, [p.text_for_embedding() for p in products]))


def evaluate_split(model: SentenceTransformer, split: EvalSet, index: ExactIndex, metrics: MetricConfig) -> Evaluation:
    """Recall@K, NDCG@10 and MRR of `model` on one split, ranking the whole catalog in `index` exactly.

    Example:
        >>> evaluate_split(  # doctest: +SKIP
        ...     model, data.validation, product_index(model, data.products), MetricConfig()
        ... )
    """
    return evaluate_ranking(index, encode_texts(model, list(split.queries.values())), split, metrics)


def evaluate_ranking(index: ExactIndex, query_vectors: np.ndarray, split: EvalSet, metrics: MetricConfig) -> Evaluation:
    """The metrics of ranking `index` exactly for `split`'s queries, whose vectors are the rows of
    `query_vectors` (shape (q, dim), unit rows) in the order of `split.queries`."""
    hits = index.search_scored(query_vectors, EVAL_DEPTH)
    run = {qid: dict(ranked) for qid, ranked in zip(split.queries, hits)}
    return evaluate(run, split.qrels, metrics)
