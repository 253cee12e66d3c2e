"""Train a bi-encoder with sentence-transformers' trainer on (query, positive, hard negatives) rows.

One run (`train`): prepare the data (`data.prepare_data`), encode the catalog once with the base model
(for the near-duplicate filter, an induced taxonomy, the first ANCE mining and the step-0 validation),
build the sampler (`mining.build_sampler`) and, with `[distill]`, the hybrid teacher (`teacher.hybrid_teacher`),
draw the negatives and teacher candidates (`batches.NegativeTable`), then train with
`SentenceTransformerTrainer` (fixed seeds; `NO_DUPLICATES` batches, so no text appears twice in a batch and
in-batch negatives are never copies of a row's positive). `monitor.TrainingMonitor` validates every
`eval_every` steps, stops early and writes the per-step log; at the end the best validated weights are
restored (the base weights when no step beat them; `restore_best = false` keeps the last step's instead).
With `max_steps = 0` no step is taken: the base model is validated (step 0) and kept unchanged.
With a `[stage2]` table, a preference stage follows from those weights: ROAR (`roar.ROARLoss`) on the
training queries' graded groups (`graded.graded_rows`), validated the same way, its own log
(`train_log_stage2.jsonl`), ending with its best weights (its step 0 is stage 1's best).

Example:
    >>> config = load_train_config("training/toys-taxonomy.toml").with_overrides(max_steps=5)  # doctest: +SKIP
    >>> result = train(config)  # doctest: +SKIP
    >>> result.best_step, result.best_validation["recall@24"]  # doctest: +SKIP
    (5, 0.412)
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tbhns_opensearch.config import OpenSearchConfig
from tbhns_opensearch.encoder import load_sentence_transformer, require_native_bf16
from tbhns_opensearch.errors import ConfigError, TrainingError
from tbhns_opensearch.eval.metrics import MetricConfig
from tbhns_opensearch.taxonomy import UNKNOWN
from tbhns_opensearch.training.batches import NegativeTable
from tbhns_opensearch.training.config import TrainConfig
from tbhns_opensearch.training.data import TrainingData, build_taxonomy, prepare_data
from tbhns_opensearch.training.examples import TrainingPair
from tbhns_opensearch.training.experimental.graded import LowestGroup, graded_rows, rows_dataset
from tbhns_opensearch.training.experimental.teacher import hybrid_teacher
from tbhns_opensearch.training.losses import build_loss
from tbhns_opensearch.training.mining import SamplerContext, SamplerSetup, build_sampler
from tbhns_opensearch.training.monitor import NegativeRefresh, TrainingMonitor, ValidationPoint
from tbhns_opensearch.training.negatives import FalseNegativeFilter, NegativeSampler
from tbhns_opensearch.training.retrieval import ExactIndex, evaluate_split, product_index

if TYPE_CHECKING:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from torch import nn
    from transformers import TrainerCallback

STEP_LOG = "train_log.jsonl"
STAGE2_LOG = "train_log_stage2.jsonl"


@dataclass(frozen=True)
class SamplerSummary:
    """What the sampler did, for the model card.

    Args:
        name: The sampler.
        params: Its configured parameters.
        negatives_per_pair: Explicit negatives per row.
        level_counts: Negatives per level over every draw (leaf, sibling, cousin, bm25, ance, fill).
        short_rows: Draws that returned fewer negatives than requested (then filled at random).
        taxonomy: The taxonomy's source (catalog, induced:...), for the taxonomy sampler.
        remined_at: Steps at which ANCE re-mined.
        sample: The first draws in full: (query, positive id, levels).
    """

    name: str
    params: dict[str, float]
    negatives_per_pair: int
    level_counts: dict[str, int]
    short_rows: int
    taxonomy: str | None = None
    remined_at: tuple[int, ...] = ()
    sample: tuple[tuple[str, str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True, kw_only=True)
class StageResult:
    """One training stage: its steps, best step and validations.

    Args:
        steps: Optimizer steps run (fewer than max_steps after early stopping).
        best_step: The best validated step (0: the weights the stage started from).
        best_validation: Validation means of the weights the stage ends with.
        history: Every validation.
        wall_s: Seconds from the start of the stage to its end, validation included.
        eval_s: The validation share of `wall_s`.
        log_path: The stage's per-step JSONL log.
        rows: Training rows the stage drew from (the preference stage's graded groups).
    """

    steps: int
    best_step: int
    best_validation: dict[str, float]
    history: list[ValidationPoint]
    stopped_early: bool
    wall_s: float
    eval_s: float
    log_path: Path
    rows: int = 0


@dataclass(frozen=True, kw_only=True)
class TrainResult(StageResult):
    """A finished run: stage 1 (the fields of `StageResult`; `best_validation` is stage 2's best when there is
    one, the weights the model ends with), the model with its best validated weights, and how it got there.

    Args:
        loss_counts: What the loss counted over the run (masked_mnrl: masked and seen negatives).
        stage2: The preference stage, when the config has one; the model then has its best weights.
    """

    config: TrainConfig
    data: TrainingData
    model: SentenceTransformer
    sampler: SamplerSummary
    metrics: MetricConfig = field(default_factory=MetricConfig)
    loss_counts: dict[str, int] = field(default_factory=dict)
    stage2: StageResult | None = None


@contextlib.contextmanager
def _quiet_libraries() -> Iterator[None]:
    """transformers and sentence-transformers log errors only while training; their levels come back after."""
    from transformers.utils import logging as hf_logging

    verbosity, library = hf_logging.get_verbosity(), logging.getLogger("sentence_transformers")
    level = library.level
    hf_logging.set_verbosity_error()
    library.setLevel(logging.ERROR)
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        library.setLevel(level)


def load_model(config: TrainConfig) -> SentenceTransformer:
    """The base model on `config.device`, truncating at `config.max_seq_length` tokens."""
    model = load_sentence_transformer(config.base_model, config.device)
    model.max_seq_length = config.max_seq_length
    return model


def train(
    config: TrainConfig,
    *,
    data: TrainingData | None = None,
    base_vectors: np.ndarray | None = None,
    opensearch: OpenSearchConfig | None = None,
    log_path: Path | None = None,
) -> TrainResult:
    """Train one model (see the module docstring).

    Args:
        config: The run.
        data: Prepared data, to share between runs; default `prepare_data(config.data, config.seed)`.
        base_vectors: (n_products, dim) base-model vectors of `data.products` at `config.max_seq_length`, to
            share between runs; default: encoded here.
        opensearch: The cluster for the bm25 sampler (default: OPENSEARCH_URL).
        log_path: The per-step JSONL log; default `<output_dir>/train_log.jsonl`.
    """
    from transformers import set_seed

    metrics = MetricConfig(threshold=config.data.relevance_threshold)
    if config.select_metric not in metrics.names:
        raise ConfigError(
            f"select_metric={config.select_metric!r} is not computed; use one of {', '.join(metrics.names)}"
        )
    if config.precision == "bf16":
        require_native_bf16(config.device, 'precision="bf16"', ConfigError, 'use precision="fp32"')
    set_seed(config.seed)
    model = load_model(config)
    data = data or prepare_data(config.data, config.seed, config.personalization)
    ids = tuple(p.id for p in data.products)
    base_index = product_index(model, data.products) if base_vectors is None else ExactIndex(ids, base_vectors)
    initial = evaluate_split(model, data.validation, base_index, metrics)
    false_negatives = FalseNegativeFilter.from_products(
        data.products, base_index.vectors, config.sampler.cosine_threshold
    )
    context = SamplerContext(config, data, model, base_index.vectors, false_negatives, opensearch)
    setup = build_sampler(context)
    teacher = hybrid_teacher(context, config.distill) if config.distill else None
    table = NegativeTable(
        data.train_pairs, data.products, setup.sampler, false_negatives, config.negatives_per_pair, config.seed, teacher
    )
    table.refresh(epoch=0)

    loss = build_loss(model, config)
    monitor = TrainingMonitor(
        validate=lambda m: evaluate_split(m, data.validation, product_index(m, data.products), metrics),
        log_path=log_path or Path(config.output_dir) / STEP_LOG,
        eval_every=config.eval_every,
        patience=config.patience,
        select_metric=config.select_metric,
        initial=initial,
        step_counts=getattr(loss, "pop_counts", None),
    )
    refresh = NegativeRefresh(table, setup.remine, config.sampler.remine_every)
    batches = _batches(config, setup, table, data, base_index.vectors)
    if config.max_steps:
        steps, wall_s = _fit(
            model,
            config,
            table.dataset(),
            loss,
            [monitor, refresh],
            config.max_steps,
            config.batch_size,
            config.learning_rate,
            batches=batches,
        )
    else:
        steps, wall_s = _no_steps(model, monitor)
    best, best_state = monitor.best, monitor.best_state
    if best is None or best_state is None:  # on_train_begin validates step 0, so this means train() never began
        raise TrainingError("the trainer never started; see the sentence-transformers output above")
    if config.restore_best:
        model.load_state_dict(best_state)
    summary = _summary(config, setup, table, refresh)  # before stage 2, which may draw from the same sampler
    stage2 = _preference_stage(model, config, data, monitor, setup.sampler) if config.stage2 else None
    return TrainResult(
        config=config,
        data=data,
        model=model,
        steps=steps,
        best_step=best.step,
        best_validation=stage2.best_validation if stage2 else best.metrics,
        history=monitor.history,
        stopped_early=monitor.stopped_early,
        wall_s=wall_s,
        eval_s=monitor.eval_s,
        sampler=summary,
        log_path=monitor.log_path,
        metrics=metrics,
        loss_counts=dict(monitor.counts),
        stage2=stage2,
    )


def _preference_stage(
    model: SentenceTransformer,
    config: TrainConfig,
    data: TrainingData,
    stage1: TrainingMonitor,
    sampler: NegativeSampler,
) -> StageResult:
    """ROAR on graded groups from stage 1's kept weights; ends with its best validated weights (step 0: stage 1's).
    With `lowest = "taxonomy"`, stage 1's `sampler` draws each query's lowest group."""
    from tbhns_opensearch.training.experimental.roar import ROARLoss

    stage = config.stage2
    if stage is None:
        raise ConfigError("the preference stage needs a [stage2] table")
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
    loss = ROARLoss(model, margin=stage.margin, scale=config.scale, contrast=stage.contrast)
    steps, wall_s = _fit(
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


def _batches(
    config: TrainConfig, setup: SamplerSetup, table: NegativeTable, data: TrainingData, base_vectors: np.ndarray
) -> str | Callable[..., Any]:
    """The trainer's batch sampler for stage 1: shuffled rows with no text twice in a batch (so in-batch
    negatives are never copies of a positive), or, with `batching = "taxonomy"`, batches of taxonomy
    neighbours (`topic_batches`; the sampler's taxonomy, else the one `[data]` names)."""
    if config.batching == "shuffled":
        return "no_duplicates"
    from tbhns_opensearch.training.experimental.topic_batches import TaxonomyBatchSampler

    taxonomy = setup.taxonomy or build_taxonomy(config.data, data.products, base_vectors, config.seed)
    paths = [taxonomy.paths.get(pair.positive_id, UNKNOWN) for pair in table.pairs]
    return partial(TaxonomyBatchSampler, paths=paths, texts=table.row_texts)


def _fit(
    model: SentenceTransformer,
    config: TrainConfig,
    dataset: Dataset,
    loss: nn.Module,
    callbacks: list[TrainerCallback],
    max_steps: int,
    batch_size: int,
    learning_rate: float,
    *,
    batches: str | Callable[..., Any],
) -> tuple[int, float]:
    """Run sentence-transformers' trainer on `dataset`; return the steps run and the wall seconds.

    `batches`: a `BatchSamplers` value ("no_duplicates"; graded rows repeat their padding, so they take plain
    "batch_sampler" batches) or a batch sampler factory (`_batches`).
    """
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from transformers import PrinterCallback

    with (
        _quiet_libraries(),
        tempfile.TemporaryDirectory(prefix="tbhns-train-") as scratch,
    ):  # nothing is saved there (save_strategy)
        args = SentenceTransformerTrainingArguments(
            output_dir=scratch,
            max_steps=max_steps,
            per_device_train_batch_size=batch_size,
            learning_rate=learning_rate,
            warmup_steps=config.warmup_ratio,  # a float below 1 is a share of max_steps
            seed=config.seed,
            data_seed=config.seed,
            batch_sampler=batches,
            logging_steps=1,
            save_strategy="no",
            eval_strategy="no",
            report_to="none",
            disable_tqdm=True,
            use_cpu=config.device == "cpu",
            bf16=config.precision == "bf16",
        )
        trainer = SentenceTransformerTrainer(
            model=model, args=args, train_dataset=dataset, loss=loss, callbacks=callbacks
        )
        trainer.remove_callback(PrinterCallback)  # the monitor writes the step log
        started = time.perf_counter()
        trainer.train()
        return trainer.state.global_step, time.perf_counter() - started


def _no_steps(model: SentenceTransformer, monitor: TrainingMonitor) -> tuple[int, float]:
    """`max_steps = 0`: the monitor validates and logs the base model as step 0, and no step is taken, so the
    base weights are exported unchanged."""
    from transformers import TrainerControl, TrainerState, TrainingArguments

    with tempfile.TemporaryDirectory(prefix="tbhns-train-") as scratch:
        args, state, control = (
            TrainingArguments(output_dir=scratch, report_to="none"),
            TrainerState(max_steps=0),
            TrainerControl(),
        )
        monitor.on_train_begin(args, state, control, model=model)
        monitor.on_train_end(args, state, control)
    return 0, 0.0


def _summary(
    config: TrainConfig, setup: SamplerSetup, table: NegativeTable, refresh: NegativeRefresh
) -> SamplerSummary:
    log = setup.sampler.log
    counts: Counter[str] = Counter(log.counts)
    if table.fills:
        counts["fill"] = table.fills
    return SamplerSummary(
        name=config.sampler.name,
        params=config.sampler.params,
        negatives_per_pair=config.negatives_per_pair,
        level_counts=dict(sorted(counts.items())),
        short_rows=log.short,
        taxonomy=setup.taxonomy.source if setup.taxonomy else None,
        remined_at=tuple(refresh.remined_at),
        sample=tuple((r.query, r.positive_id, r.levels) for r in log.records[:20]),
    )
