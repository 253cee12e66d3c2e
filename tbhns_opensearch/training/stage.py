"""One training stage: sentence-transformers' trainer on a dataset with a loss and callbacks (`fit`), or no step at
all (`no_steps`), and what a stage reports (`StageResult`). The trainer runs stage 1 with them; an experimental
second stage (`experimental.preference`) runs the same way."""

from __future__ import annotations

import contextlib
import functools
import logging
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tbhns_opensearch.training.distributed import WholeBatches, World, batch_sampler_class, row_log

if TYPE_CHECKING:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from torch import nn
    from transformers import TrainerCallback

    from tbhns_opensearch.training.checkpoints import Checkpoints
    from tbhns_opensearch.training.config import TrainConfig
    from tbhns_opensearch.training.monitor import TrainingMonitor, ValidationPoint


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


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
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


def fit(
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
    checkpoints: Checkpoints | None = None,
) -> tuple[int, float]:
    """Run sentence-transformers' trainer on `dataset`; return the steps run and the wall seconds (with
    `checkpoints` resuming, the steps and seconds of the run before the checkpoint count too).

    `batches`: a `BatchSamplers` value ("no_duplicates"; graded rows repeat their padding, so they take plain
    "batch_sampler" batches) or a batch sampler factory (`experimental.hooks.Experiments.batches`).
    `checkpoints`: save a checkpoint every `checkpoints.every` steps in `checkpoints.directory`, and resume from
    `checkpoints.resume_from` (`training.checkpoints`); None saves nothing.
    On several processes (`distributed`) each batch of `batch_size` rows is drawn whole and split between them
    (`split_batches`); every batch is full (`distributed.WholeBatches`).
    """
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from transformers import PrinterCallback

    every = checkpoints.every if checkpoints is not None else 0
    save: dict[str, Any] = {"save_strategy": "steps", "save_steps": every} if every else {"save_strategy": "no"}
    world = World.from_env()
    if world.distributed:  # whole batches, split between the processes
        batches = functools.partial(WholeBatches, inner=batch_sampler_class(batches))
    split: dict[str, Any] = {"accelerator_config": {"split_batches": True}} if world.distributed else {}
    with (
        quiet_libraries(),
        warnings.catch_warnings(),  # the libraries' deprecations of their own internals (DDP's broadcast_buffers)
        tempfile.TemporaryDirectory(prefix="tbhns-train-") as scratch,
    ):  # without checkpoints nothing is saved there (save_strategy)
        warnings.simplefilter("ignore", FutureWarning)
        args = SentenceTransformerTrainingArguments(
            output_dir=str(checkpoints.directory) if checkpoints is not None else scratch,
            max_steps=max_steps,
            per_device_train_batch_size=batch_size,
            learning_rate=learning_rate,
            warmup_steps=config.warmup_ratio,  # a float below 1 is a share of max_steps
            seed=config.seed,
            data_seed=config.seed,
            batch_sampler=batches,
            logging_steps=1,
            **save,
            **split,
            eval_strategy="no",
            report_to="none",
            disable_tqdm=True,
            use_cpu=config.device == "cpu",
            bf16=config.precision == "bf16",
        )
        trainer = SentenceTransformerTrainer(
            model=model,
            args=args,
            train_dataset=dataset,
            loss=loss,
            callbacks=[*callbacks, checkpoints] if checkpoints is not None else callbacks,
        )
        trainer.remove_callback(PrinterCallback)  # the monitor writes the step log
        trainer.data_collator = row_log(trainer.data_collator, world)  # itself unless TBHNS_DEBUG_ROWS is set
        started = time.perf_counter()
        resume_from = checkpoints.resume_from if checkpoints is not None else None
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        before = checkpoints.resumed_wall_s if checkpoints is not None else 0.0
        return trainer.state.global_step, before + time.perf_counter() - started


def no_steps(model: SentenceTransformer, monitor: TrainingMonitor) -> tuple[int, float]:
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
