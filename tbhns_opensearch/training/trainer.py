"""Train a bi-encoder with sentence-transformers' trainer on (query, positive, hard negatives) rows.

One run (`train`): prepare the data (`data.prepare_data`), encode the catalog once with the base model
(for the near-duplicate filter, an induced taxonomy, the first ANCE mining and the step-0 validation),
build the sampler (`mining.build_sampler`), draw the negatives (`batches.NegativeTable`), then train with
`SentenceTransformerTrainer` (`stage.fit`; fixed seeds; `NO_DUPLICATES` batches, so no text appears twice in a
batch and in-batch negatives are never copies of a row's positive). `monitor.TrainingMonitor` validates every
`eval_every` steps, stops early and writes the per-step log; at the end the best validated weights are
restored (the base weights when no step beat them; `restore_best = false` keeps the last step's instead).
With `max_steps = 0` no step is taken: the base model is validated (step 0) and kept unchanged.
With `checkpoint_every` the trainer saves checkpoints in `<output_dir>/checkpoints` and `resume=True` continues
from the newest one, to the weights, best step and card of a run never interrupted (`checkpoints`).
Under torchrun the run trains one model on several processes (`distributed`): each takes its share of every
batch, rank 0 alone validates and keeps the best weights, and the others return None.

The experimental options (`[experimental]`: a hybrid teacher's candidates in each row, batches of taxonomy
neighbours, a second ROAR stage from the kept weights) come in through one seam, `experimental.hooks.Experiments`,
whose hooks return the plain path's choice when the table is left out.

Example:
    >>> config = load_train_config("training/toys-taxonomy.toml").with_overrides(max_steps=5)  # doctest: +SKIP
    >>> result = train(config)  # doctest: +SKIP
    >>> result.best_step, result.best_validation["recall@24"]  # doctest: +SKIP
    (5, 0.412)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tbhns_opensearch.config import OpenSearchConfig
from tbhns_opensearch.encoder import device_problem, load_sentence_transformer, require_native_bf16
from tbhns_opensearch.errors import ConfigError, TrainingError
from tbhns_opensearch.eval.metrics import MetricConfig
from tbhns_opensearch.training.batches import NegativeTable
from tbhns_opensearch.training.checkpoints import Stateful, find_checkpoint, plan_checkpoints
from tbhns_opensearch.training.config import TrainConfig
from tbhns_opensearch.training.data import TrainingData, prepare_data
from tbhns_opensearch.training.distributed import World, barrier, check_distributed, main_first, share_flag, start
from tbhns_opensearch.training.experimental.hooks import Experiments
from tbhns_opensearch.training.losses import build_loss
from tbhns_opensearch.training.mining import SamplerContext, SamplerSetup, build_sampler
from tbhns_opensearch.training.monitor import FollowStop, NegativeRefresh, TrainingMonitor
from tbhns_opensearch.training.negatives import FalseNegativeFilter
from tbhns_opensearch.training.retrieval import ExactIndex, evaluate_split, product_index
from tbhns_opensearch.training.stage import StageResult, fit, no_steps

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

STEP_LOG = "train_log.jsonl"


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
class TrainResult(StageResult):
    """A finished run: stage 1 (the fields of `StageResult`; `best_validation` is stage 2's best when there is
    one, the weights the model ends with), the model with its best validated weights, and how it got there.

    Args:
        loss_counts: What the loss counted over the run (masked_mnrl: masked and seen negatives).
        stage2: The preference stage, when the config has one; the model then has its best weights.
        processes: The processes that trained it (`distributed`; 1: this one alone).
    """

    config: TrainConfig
    data: TrainingData
    model: SentenceTransformer
    sampler: SamplerSummary
    metrics: MetricConfig = field(default_factory=MetricConfig)
    loss_counts: dict[str, int] = field(default_factory=dict)
    stage2: StageResult | None = None
    processes: int = 1


def load_model(config: TrainConfig) -> SentenceTransformer:
    """The base model on `config.device`, truncating at `config.max_seq_length` tokens."""
    model = load_sentence_transformer(config.base_model, config.device)
    model.max_seq_length = config.max_seq_length
    return model


def check_device(config: TrainConfig) -> None:
    """Refuse, before anything loads on it, a `device` this machine lacks (a CUDA GPU on a CPU-only machine or
    torch build) or a bf16 `precision` it does not run natively: one line each, naming the fix.

    Example:
        >>> from tbhns_opensearch.training.config import DataConfig
        >>> check_device(TrainConfig(data=DataConfig(dataset="icecat"), device="cuda:99"))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        tbhns_opensearch.errors.ConfigError: device='cuda:99': 'cuda:99' is not on this machine, which has ...
    """
    if problem := device_problem(config.device):
        raise ConfigError(
            f'device={config.device!r}: {problem}; train on the CPU (--device cpu, or device = "cpu" in the '
            "config) or on a machine with that device"
        )
    if config.precision == "bf16":
        require_native_bf16(config.device, 'precision="bf16"', ConfigError, 'use precision="fp32"')


def train(
    config: TrainConfig,
    *,
    data: TrainingData | None = None,
    base_vectors: np.ndarray | None = None,
    opensearch: OpenSearchConfig | None = None,
    log_path: Path | None = None,
    resume: bool = False,
) -> TrainResult | None:
    """Train one model (see the module docstring); None on the processes of a distributed run other than rank 0,
    which holds the result (`distributed`).

    Args:
        config: The run.
        data: Prepared data, to share between runs; default `prepare_data(config.data, config.seed)`.
        base_vectors: (n_products, dim) base-model vectors of `data.products` at `config.max_seq_length`, to
            share between runs; default: encoded here.
        opensearch: The cluster for the bm25 sampler (default: OPENSEARCH_URL).
        log_path: The per-step JSONL log; default `<output_dir>/train_log.jsonl`.
        resume: Continue from the newest checkpoint of the run (`checkpoints.find_checkpoint`; the config must
            be the one that saved it), to the same weights, best step and card as a run never interrupted.
    """
    from transformers import set_seed

    metrics = MetricConfig(threshold=config.data.relevance_threshold)
    if config.select_metric not in metrics.names:
        raise ConfigError(
            f"select_metric={config.select_metric!r} is not computed; use one of {', '.join(metrics.names)}"
        )
    check_device(config)
    world = World.from_env()
    check_distributed(config, world.size)
    resume_from = find_checkpoint(config) if resume else None
    start(world, config.device)
    set_seed(config.seed)
    experiments = Experiments(config)
    model = load_model(config)
    data = data or prepare_data(config.data, config.seed, config.personalization)
    ids = tuple(p.id for p in data.products)
    base_index = product_index(model, data.products) if base_vectors is None else ExactIndex(ids, base_vectors)
    validates = world.main and not resume_from  # else rank 0 validates / the checkpoint holds it
    initial = evaluate_split(model, data.validation, base_index, metrics) if validates else None
    false_negatives = FalseNegativeFilter.from_products(
        data.products, base_index.vectors, config.sampler.cosine_threshold
    )
    context = SamplerContext(config, data, model, base_index.vectors, false_negatives, opensearch)
    with main_first(world):  # rank 0 ingests a catalog the bm25 sampler or the teacher searches, then the others
        setup = build_sampler(context)
        teacher = experiments.teacher(context)
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
        share=share_flag,
    )
    follow = None if world.main else FollowStop(config.eval_every, share_flag)  # the other ranks: its stop only
    refresh = NegativeRefresh(table, setup.remine, config.sampler.remine_every)
    parts: dict[str, Stateful] = {"table": table, "refresh": refresh, **({"hits": setup.hits} if setup.hits else {})}
    checkpoints = plan_checkpoints(
        config,
        data,
        parts,
        monitor if world.main else None,
        resume_from,
        main=world.main,
        barrier=barrier if world.distributed else None,
    )
    batches = experiments.batches(setup.taxonomy, table, data, base_index.vectors)
    if checkpoints is not None and checkpoints.finished(config.max_steps):  # killed after training, e.g. exporting
        checkpoints.load_weights(model)
        steps, wall_s = checkpoints.resumed_step, checkpoints.resumed_wall_s
    elif config.max_steps:
        steps, wall_s = fit(
            model,
            config,
            table.dataset(),
            loss,
            [follow or monitor, refresh],
            config.max_steps,
            config.batch_size,
            config.learning_rate,
            batches=batches,
            checkpoints=checkpoints,
        )
    elif world.main:
        steps, wall_s = no_steps(model, monitor)
    if not world.main:
        return None
    best, best_state = monitor.best, monitor.best_state
    if best is None or best_state is None:  # on_train_begin validates step 0, so this means train() never began
        raise TrainingError("the trainer never started; see the sentence-transformers output above")
    if config.restore_best:
        model.load_state_dict(best_state)
    summary = _summary(config, setup, table, refresh)  # before stage 2, which may draw from the same sampler
    stage2 = experiments.second_stage(model, data, monitor, setup.sampler)
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
        processes=world.size,
    )


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
