"""The preference stage (`[experimental.stage2]`): ROAR (`roar.ROARLoss`) on the training queries' graded groups
(`graded.graded_rows`), from stage 1's kept weights, validated the same way, with its own step log
(`train_log_stage2.jsonl`), ending with its best weights (its step 0 is stage 1's best)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from tbhns_opensearch.errors import ConfigError, TrainingError
from tbhns_opensearch.training.examples import TrainingPair
from tbhns_opensearch.training.experimental.graded import LowestGroup, graded_rows, rows_dataset
from tbhns_opensearch.training.experimental.roar import ROARLoss
from tbhns_opensearch.training.monitor import TrainingMonitor
from tbhns_opensearch.training.stage import StageResult, fit

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from tbhns_opensearch.training.config import TrainConfig
    from tbhns_opensearch.training.data import TrainingData
    from tbhns_opensearch.training.negatives import NegativeSampler

STAGE2_LOG = "train_log_stage2.jsonl"


def preference_stage(
    model: SentenceTransformer,
    config: TrainConfig,
    data: TrainingData,
    stage1: TrainingMonitor,
    sampler: NegativeSampler,
) -> StageResult:
    """ROAR on graded groups from stage 1's kept weights; ends with its best validated weights (step 0: stage 1's).
    With `lowest = "taxonomy"`, stage 1's `sampler` draws each query's lowest group."""
    stage = config.experimental.stage2
    if stage is None:
        raise ConfigError("the preference stage needs an [experimental.stage2] table")
    texts = {p.id: p.text_for_embedding() for p in data.products}
    lowest = _sampled_lowest(sampler, config.seed) if stage.lowest == "taxonomy" else None
    rows = graded_rows(
        data.train_judgments, texts, size=stage.group_size, unjudged=stage.unjudged, seed=config.seed, lowest=lowest
    )
    monitor = TrainingMonitor(
        validate=stage1.validate,
        log_path=stage1.log_path.with_name(STAGE2_LOG),
        eval_every=stage.eval_every,
        patience=config.patience,
        select_metric=config.select_metric,
        initial=stage1.best_evaluation if config.restore_best else None,
    )
    loss = ROARLoss(model, margin=stage.margin, scale=config.loss.scale, contrast=stage.contrast)
    steps, wall_s = fit(
        model,
        config,
        rows_dataset(rows),
        loss,
        [monitor],
        stage.max_steps,
        stage.batch_size,
        stage.learning_rate,
        batches="batch_sampler",
    )
    if monitor.best is None or monitor.best_state is None:
        raise TrainingError("the preference stage never started; see the sentence-transformers output above")
    if config.restore_best:
        model.load_state_dict(monitor.best_state)
    return StageResult(
        steps=steps,
        best_step=monitor.best.step,
        best_validation=monitor.best.metrics,
        history=monitor.history,
        stopped_early=monitor.stopped_early,
        wall_s=wall_s,
        eval_s=monitor.eval_s,
        rows=len(rows),
        log_path=monitor.log_path,
    )


def _sampled_lowest(sampler: NegativeSampler, seed: int) -> LowestGroup:
    """ROAR's lowest group from a negative sampler: its negatives for the query's top product (the first id of
    the highest grade), every judged product counted relevant so none is drawn."""

    def draw(query: str, grades: Mapping[str, int]) -> list[str]:
        top = max(sorted(grades), key=lambda pid: grades[pid])
        pair = TrainingPair(query, top, frozenset(grades), "real")
        return [negative.product_id for negative in sampler.sample(pair, seed=seed, epoch=0)]

    return draw
