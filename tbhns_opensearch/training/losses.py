"""Training losses by name, each built from sentence-transformers (imported only when a loss is built).

Rows are (anchor, positive, negative_1, ..., negative_n):
- `mnrl`: MultipleNegativesRankingLoss: softmax over the positive, the row's explicit negatives and every
  other row's positive and negatives (in-batch negatives).
- `cached_mnrl`: the same loss with gradient caching (GradCache), so large batches fit in memory; results
  match `mnrl` for the same batch.
- `masked_mnrl` (experimental): `mnrl` whose softmax leaves out negatives that a guide (the frozen base model or
  the model itself) scores within `mask_margin` of the row's positive (`experimental.masked_loss`).
- `margin`: TripletLoss on cosine distance, max(0, d(a, p) - d(a, n) + margin); one negative per row.

`mnrl` and `cached_mnrl` take `directions` (`DIRECTIONS`): beside query -> documents, the softmax may also hold
query -> other queries, document -> queries and document -> other documents, in one joint softmax; all four
are GTE's "improved contrastive loss" (Li et al. 2023), which sentence-transformers implements. They also take
`hardness_mode` / `hardness_strength` (`HARDNESS_MODES`): a negative's logit gains strength x its cosine, so the
closest negatives weigh more in the softmax. On several processes (`distributed`) they gather every process's rows
(`gather_across_devices`), so each query's softmax holds the whole batch's.

Each builder takes the whole `TrainConfig` and reads its `[loss]` table (`config.loss`). `build_loss` gives the
loss a run trains with: the named one, passed through the experimental hook (`experimental.hooks.Experiments.loss`:
with `[experimental.distill]`, plus the hybrid teacher's distillation term).

Example:
    >>> sorted(LOSSES)
    ['cached_mnrl', 'margin', 'masked_mnrl', 'mnrl']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tbhns_opensearch.training.distributed import world_size
from tbhns_opensearch.training.experimental.hooks import Experiments, masked_mnrl

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from torch import nn

    from tbhns_opensearch.training.config import TrainConfig


def _mnrl_options(config: TrainConfig) -> dict[str, Any]:
    """The options `mnrl` and `cached_mnrl` share: directions, hardness weighting and, on several processes
    (`distributed`), in-batch negatives gathered across them."""
    loss = config.loss
    hardness = loss.hardness_mode != "none"
    gather = {"gather_across_devices": True} if loss.gather_across_devices and world_size() > 1 else {}
    return {
        "directions": loss.directions,
        "hardness_mode": loss.hardness_mode if hardness else None,
        "hardness_strength": loss.hardness_strength,
        **gather,
    }


def _mnrl(model: SentenceTransformer, config: TrainConfig) -> nn.Module:
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    return MultipleNegativesRankingLoss(model, scale=config.loss.scale, **_mnrl_options(config))


def _cached_mnrl(model: SentenceTransformer, config: TrainConfig) -> nn.Module:
    from sentence_transformers.sentence_transformer.losses import CachedMultipleNegativesRankingLoss

    return CachedMultipleNegativesRankingLoss(
        model, scale=config.loss.scale, mini_batch_size=config.loss.mini_batch_size, **_mnrl_options(config)
    )


def _margin(model: SentenceTransformer, config: TrainConfig) -> nn.Module:
    from sentence_transformers.sentence_transformer.losses import TripletDistanceMetric, TripletLoss

    return TripletLoss(model, distance_metric=TripletDistanceMetric.COSINE, triplet_margin=config.loss.margin)


HARDNESS_MODES = ("none", "hard_negatives", "in_batch_negatives", "all_negatives")
"""Which negatives' logits MNRL raises by hardness_strength x their (detached) cosine: none, the row's explicit
negatives (EmbeddingGemma), the other rows' texts (Lan et al. 2025), or both."""
DIRECTIONS = ("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc")
"""The softmax terms sentence-transformers' MultipleNegativesRankingLoss accepts; "query_to_doc" is always on."""

LOSSES: dict[str, Callable[[SentenceTransformer, TrainConfig], nn.Module]] = {
    "mnrl": _mnrl,
    "cached_mnrl": _cached_mnrl,
    "masked_mnrl": masked_mnrl,
    "margin": _margin,
}


def build_loss(model: SentenceTransformer, config: TrainConfig) -> nn.Module:
    """The loss a run trains with: the one `config.loss.name` names, through the experimental hook (with
    `[experimental.distill]`, plus the hybrid teacher's distillation term)."""
    return Experiments(config).loss(model, LOSSES[config.loss.name](model, config))
