"""Trainer callbacks: validation every N steps with early stopping and a per-step JSONL log; negative refresh.

`TrainingMonitor` validates at step 0 (the base model), every `eval_every` steps and at the last step, keeps
a copy of the best weights (by `select_metric`; ties keep the earlier step), stops after `patience`
validations without improvement, and writes one JSON line per step:

    {"step": 50, "loss": 1.93, "learning_rate": 1.6e-05, "wall_s": 81.2, "eval_s": 12.0,
     "validation": {"recall@24": 0.61, "ndcg@10": 0.44, ...}}

`wall_s` counts from the start of training and includes validation; `eval_s` is the validation share, so
training time alone is `wall_s - eval_s`. Lines without "validation" are steps that were not validated.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from tbhns_opensearch.eval.metrics import Evaluation

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from torch import Tensor

    from tbhns_opensearch.training.batches import NegativeTable

Validate = Callable[["SentenceTransformer"], Evaluation]


@dataclass
class ValidationPoint:
    """Validation means at one step."""

    step: int
    metrics: dict[str, float]


@dataclass
class TrainingMonitor(TrainerCallback):
    """Validation, early stopping, best weights and the per-step log.

    Args:
        validate: Scores a model on the validation split.
        log_path: The JSONL step log (overwritten).
        eval_every: Validate every N steps.
        patience: Validations without improvement before stopping; 0 never stops.
        select_metric: The metric that picks the best step.
        initial: The step-0 evaluation, when already computed (saves one validation).
        step_counts: Returns counts since its last call (the masked loss's masked negatives), added to each
            step's line and summed in `counts`.
        progress: Show a progress bar (steps, loss, last validation) on stderr.
    """

    validate: Validate
    log_path: Path
    eval_every: int
    patience: int
    select_metric: str
    initial: Evaluation | None = None
    step_counts: Callable[[], dict[str, int]] | None = None
    progress: bool = True
    counts: Counter[str] = field(default_factory=Counter)
    history: list[ValidationPoint] = field(default_factory=list)
    best: ValidationPoint | None = None
    best_state: dict[str, Tensor] | None = None
    best_evaluation: Evaluation | None = None
    stopped_early: bool = False
    eval_s: float = 0.0
    _started: float = 0.0
    _pending: dict[str, float] | None = None
    _stale: int = 0
    _bar: tqdm | None = None

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.write_text("")
        self._started = time.perf_counter()
        self._bar = tqdm(total=state.max_steps, desc="training", unit="step", disable=not self.progress)
        self._check(kwargs["model"], 0, self.initial)
        self._write({"step": 0, "wall_s": 0.0, "eval_s": round(self.eval_s, 2), "validation": self._pending})
        self._pending = None

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        step = state.global_step
        if step % self.eval_every and step < state.max_steps:
            return
        self._check(kwargs["model"], step)
        if self.patience and self._stale >= self.patience:
            self.stopped_early = True
            control.should_training_stop = True

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        logs = logs or {}
        if "loss" not in logs:
            return  # the end-of-training summary
        line: dict[str, Any] = {
            "step": state.global_step,
            "loss": logs["loss"],
            "learning_rate": logs.get("learning_rate"),
            "wall_s": round(time.perf_counter() - self._started, 2),
            "eval_s": round(self.eval_s, 2),
        }
        if self.step_counts is not None:
            step_counts = self.step_counts()
            self.counts.update(step_counts)
            line.update(step_counts)
        if self._pending is not None:
            line["validation"] = self._pending
            self._pending = None
        self._write(line)
        if self._bar is not None:
            self._bar.update(state.global_step - self._bar.n)
            best = f"{self.best.metrics[self.select_metric]:.4f}" if self.best else "-"
            self._bar.set_postfix(loss=f"{logs['loss']:.3f}", **{f"best {self.select_metric}": best})

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self._bar is not None:
            self._bar.close()

    @property
    def steps_to_best(self) -> int:
        return self.best.step if self.best else 0

    def _check(self, model: SentenceTransformer, step: int, evaluation: Evaluation | None = None) -> None:
        if self._bar is not None and evaluation is None:
            self._bar.set_postfix_str(f"validating step {step}")
        started = time.perf_counter()
        evaluation = evaluation or self.validate(model)
        self.eval_s += time.perf_counter() - started
        point = ValidationPoint(step, {name: round(value, 5) for name, value in evaluation.mean.items()})
        self.history.append(point)
        self._pending = point.metrics
        if self.best is None or point.metrics[self.select_metric] > self.best.metrics[self.select_metric]:
            self.best, self.best_evaluation, self._stale = point, evaluation, 0
            self.best_state = {name: value.detach().to("cpu", copy=True) for name, value in model.state_dict().items()}
        else:
            self._stale += 1

    def _write(self, line: dict[str, Any]) -> None:
        with self.log_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")


@dataclass
class NegativeRefresh(TrainerCallback):
    """Re-draws the table's negatives at each new epoch and, with `remine`, every `remine_every` steps.

    Each refresh draws with the next round number (the table was filled with round 0 before training), so
    negatives rotate deterministically.

    Args:
        table: The training rows' negatives.
        remine: Refreshes the sampler's hits from the current model (ANCE), or None.
        remine_every: Steps between re-minings (with `remine`).
    """

    table: NegativeTable
    remine: Callable[[SentenceTransformer], None] | None = None
    remine_every: int = 0
    remined_at: list[int] = field(default_factory=list)
    rounds: int = 0
    _epochs: int = 0

    def on_epoch_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._epochs += 1
        if self._epochs > 1:  # the first epoch uses the negatives drawn before training
            self._refresh()

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        step = state.global_step
        if self.remine is None or not self.remine_every or step % self.remine_every or step >= state.max_steps:
            return
        self.remine(kwargs["model"])
        self.remined_at.append(step)
        self._refresh()

    def _refresh(self) -> None:
        self.rounds += 1
        self.table.refresh(epoch=self.rounds)
