"""A hybrid teacher for distillation: the product's own hybrid ranking (BM25 + an encoder) of each training query.

For every training query the teacher holds the first `depth` products that hybrid search would return with
the base model (or `[experimental.distill] encoder`, e.g. a model trained before): BM25's top `depth` hits (with scores,
from OpenSearch) and the encoder's top `depth` (exact cosines), min-max fused with the served weights
(`query.fusion`, 0.6 / 0.4). A training row draws `count` candidates from that list (seeded; never the row's
own positive) and the teacher's scores for (positive, candidates): the labelled positive scores 1.0, the top
of any fused list, and each candidate its fused score. `distill_loss.DistilledLoss` then pulls the student's
softmax over those candidates toward the teacher's, beside the contrastive loss, so the encoder learns which
near matches the hybrid ranks first.

Example:
    >>> bm25 = {"kite": [("p1", 5.0), ("p2", 2.0)]}
    >>> dense = {"kite": [("p3", 0.8), ("p2", 0.6)]}
    >>> teacher = HybridTeacher.fused(bm25, dense, HybridConfig(depth=3), count=2)
    >>> teacher.draw(TrainingPair("kite", "p1", frozenset({"p1"}), "real"), seed=0, epoch=0)
    (('p3', 'p2'), (1.0, 0.4000000059604645, 0.0010000000474974513))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tbhns_opensearch.encoder import load_sentence_transformer
from tbhns_opensearch.errors import TrainingError
from tbhns_opensearch.eval.queries import query_key
from tbhns_opensearch.query.fusion import HybridConfig, RankedList, bm25_weighted, fuse
from tbhns_opensearch.seeding import keyed_rng
from tbhns_opensearch.training.examples import TrainingPair
from tbhns_opensearch.training.mining import SamplerContext, bm25_hits, train_queries, training_catalog
from tbhns_opensearch.training.retrieval import ExactIndex, encode_texts, product_index

if TYPE_CHECKING:
    from tbhns_opensearch.training.experimental.config import DistillConfig

POSITIVE_SCORE = 1.0  # the teacher's score for a row's labelled positive: the top of any min-max fused list


@dataclass(frozen=True)
class HybridTeacher:
    """Fused (product id, score) lists per query text, best first; `draw` gives a row's candidates and labels.

    Args:
        ranked: Query text -> the hybrid's fused list for it.
        count: Candidates per row.
    """

    ranked: Mapping[str, RankedList]
    count: int

    @classmethod
    def fused(
        cls, bm25: Mapping[str, RankedList], dense: Mapping[str, RankedList], hybrid: HybridConfig, count: int
    ) -> HybridTeacher:
        """Fuse each query's BM25 and dense lists as hybrid search does (`fusion.fuse`), keeping its first
        `hybrid.depth` products."""
        ranked = {query: fuse([bm25.get(query, []), hits], hybrid)[: hybrid.depth] for query, hits in dense.items()}
        return cls(ranked, count)

    def draw(self, pair: TrainingPair, *, seed: int, epoch: int) -> tuple[tuple[str, ...], tuple[float, ...]]:
        """`count` candidate ids for the row (seeded by seed, epoch, query and positive) and the teacher's
        scores for (positive, candidate_1, ..., candidate_count)."""
        if pair.query not in self.ranked:
            raise TrainingError(f"the teacher has no ranking for {pair.query!r}; build it from every training query")
        pool = [(pid, score) for pid, score in self.ranked[pair.query] if pid != pair.positive_id]
        if len(pool) < self.count:
            raise TrainingError(
                f"the hybrid ranks {len(pool)} products besides the positive for {pair.query!r}, "
                f"fewer than [distill] candidates = {self.count}; raise depth or lower candidates"
            )
        rng = keyed_rng(seed, epoch, "teacher", query_key(pair.query), pair.positive_id)
        chosen = sorted(rng.sample(range(len(pool)), self.count))  # keep the fused order: best first
        return tuple(pool[i][0] for i in chosen), (POSITIVE_SCORE, *(pool[i][1] for i in chosen))


def hybrid_teacher(context: SamplerContext, distill: DistillConfig) -> HybridTeacher:
    """The teacher for every training query: BM25 from the training catalog on OpenSearch (ingested once, as
    the bm25 sampler does), and exact cosines of the base model (`context.base_vectors`) or of
    `distill.encoder` (e.g. a model trained before, so the hybrid it serves teaches the next one)."""
    client, alias = training_catalog(context)
    queries = train_queries(context.data)
    encoder, vectors = context.model, context.base_vectors
    if distill.encoder:
        encoder = load_sentence_transformer(distill.encoder, context.config.device)
        encoder.max_seq_length = context.config.max_seq_length
        vectors = product_index(encoder, context.data.products).vectors
    index = ExactIndex(tuple(p.id for p in context.data.products), vectors)
    dense = dict(zip(queries, index.search_scored(encode_texts(encoder, queries), distill.depth)))
    bm25 = bm25_hits(client, alias, queries, distill.depth)
    hybrid = HybridConfig(weights=bm25_weighted(distill.bm25_weight), depth=distill.depth, path="client")
    return HybridTeacher.fused(bm25, dense, hybrid, distill.candidates)
