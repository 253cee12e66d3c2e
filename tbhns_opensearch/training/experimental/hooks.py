"""The one way the main training path reaches the experimental options: `Experiments`, four hooks the trainer
and `losses.build_loss` call on every run, and `masked_mnrl`, the experimental entry of `losses.LOSSES`.

With `[experimental]` left out each hook returns what the plain path uses (no teacher, the loss as built,
shuffled batches with no text twice, no second stage), so `trainer.py` holds no check of an experimental
option. The modules behind the hooks (torch, the ROAR stage, the hybrid teacher) are imported only when an
option is on.

Example:
    >>> from tbhns_opensearch.training.config import DataConfig, TrainConfig
    >>> hooks = Experiments(TrainConfig(data=DataConfig(dataset="icecat")))
    >>> hooks.teacher(context=None), hooks.batches(taxonomy=None, table=None, data=None, base_vectors=None)
    (None, 'no_duplicates')
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    from sentence_transformers import SentenceTransformer
    from torch import nn

    from tbhns_opensearch.taxonomy import Taxonomy
    from tbhns_opensearch.training.batches import NegativeTable
    from tbhns_opensearch.training.config import TrainConfig
    from tbhns_opensearch.training.data import TrainingData
    from tbhns_opensearch.training.experimental.teacher import HybridTeacher
    from tbhns_opensearch.training.mining import SamplerContext
    from tbhns_opensearch.training.monitor import TrainingMonitor
    from tbhns_opensearch.training.negatives import NegativeSampler
    from tbhns_opensearch.training.stage import StageResult


@dataclass(frozen=True)
class Experiments:
    """The experimental options of `config` (`config.experimental`) at the points of a run they change.

    Args:
        config: The run.
    """

    config: TrainConfig

    def teacher(self, context: SamplerContext) -> HybridTeacher | None:
        """`[experimental.distill]`: the hybrid teacher whose candidates and scores ride in each row; else None."""
        distill = self.config.experimental.distill
        if distill is None:
            return None
        from tbhns_opensearch.training.experimental.teacher import hybrid_teacher

        return hybrid_teacher(context, distill)

    def loss(self, model: SentenceTransformer, loss: nn.Module) -> nn.Module:
        """`[experimental.distill]`: `loss` plus the teacher's distillation term; else `loss` itself."""
        distill = self.config.experimental.distill
        if distill is None:
            return loss
        from tbhns_opensearch.training.experimental.distill_loss import DistilledLoss

        return DistilledLoss(
            model,
            loss,
            contrastive_columns=2 + self.config.negatives_per_pair,
            scale=self.config.loss.scale,
            teacher_temperature=distill.teacher_temperature,
            weight=distill.weight,
        )

    def batches(
        self,
        taxonomy: Taxonomy | None,
        table: NegativeTable,
        data: TrainingData,
        base_vectors: np.ndarray,
    ) -> str | Callable[..., Any]:
        """Stage 1's batch sampler: shuffled rows with no text twice in a batch (so in-batch negatives are never
        copies of a positive), or, with `batching = "taxonomy"`, batches of taxonomy neighbours (`topic_batches`;
        the sampler's `taxonomy`, else the one `[data]` names, built from the base vectors)."""
        if self.config.experimental.batching == "shuffled":
            return "no_duplicates"
        from tbhns_opensearch.taxonomy import UNKNOWN
        from tbhns_opensearch.training.data import build_taxonomy
        from tbhns_opensearch.training.experimental.topic_batches import TaxonomyBatchSampler

        config = self.config
        taxonomy = taxonomy or build_taxonomy(config.data, data.products, base_vectors, config.seed)
        paths = [taxonomy.paths.get(pair.positive_id, UNKNOWN) for pair in table.pairs]
        return partial(TaxonomyBatchSampler, paths=paths, texts=table.row_texts)

    def second_stage(
        self,
        model: SentenceTransformer,
        data: TrainingData,
        stage1: TrainingMonitor,
        sampler: NegativeSampler,
    ) -> StageResult | None:
        """`[experimental.stage2]`: the ROAR stage from stage 1's kept weights (`preference.preference_stage`);
        else None."""
        if self.config.experimental.stage2 is None:
            return None
        from tbhns_opensearch.training.experimental.preference import preference_stage

        return preference_stage(model, self.config, data, stage1, sampler)


def masked_mnrl(model: SentenceTransformer, config: TrainConfig) -> nn.Module:
    """Loss `masked_mnrl`: MNRL without the negatives a guide scores within `mask_margin` of the positive
    (`masked_loss`), set by `[experimental]` mask_guide, mask_margin and mask_strategy."""
    from tbhns_opensearch.training.experimental.masked_loss import MaskedMultipleNegativesRankingLoss

    options = config.experimental
    return MaskedMultipleNegativesRankingLoss(
        model,
        guide=options.mask_guide,
        margin=options.mask_margin,
        strategy=options.mask_strategy,
        scale=config.loss.scale,
    )
