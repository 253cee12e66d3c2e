"""Trainer callbacks: validation every N steps with early stopping and a per-step JSONL log; negative refresh.

`TrainingMonitor` validates at step 0 (the base model), every `eval_every` steps and at the last step, keeps
a copy of the best weights (by `select_metric`; ties keep the earlier step), stops after `patience`
validations without improvement, and writes one JSON line per step:

    {"step": 50, "loss": 1.93, "learning_rate": 1.6e-05, "wall_s": 81.2, "eval_s": 12.0,
     "validation": {"recall@24": 0.61, "ndcg@10": 0.44, ...}}

`wall_s` counts from the start of training and includes validation; `eval_s` is the validation share, so
training time alone is `wall_s - eval_s`. Lines without "validation" are steps that were not validated.

Both callbacks hand their state to a checkpoint (`state_dict`, as JSON values; the best weights are the
checkpoint's to save) and take it back on resume (`load_state_dict`): the monitor then keeps the log's lines up
to the checkpoint's step and goes on from there, without validating step 0 again.
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
        share: Hands the early-stop decision of each validation to the other processes of a distributed run
            (`distributed.share_flag`; they follow it with `FollowStop`).
    """

    validate: Validate
    log_path: Path
    eval_every: int
    patience: int
    select_metric: str
    initial: Evaluation | None = None
    step_counts: Callable[[], dict[str, int]] | None = None
    progress: bool = True
    share: Callable[[bool], bool] = bool  # one process: the decision as it is
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
    _step: int = 0
    _resumed_wall_s: float | None = None  # set by `load_state_dict`

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self._resumed_wall_s is not None:
            self._resume(state)
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.write_text("")
        self._started = time.perf_counter()
        self._bar = tqdm(total=state.max_steps, desc="training", unit="step", disable=not self.progress)
        self._check(kwargs["model"], 0, self.initial)
        self._write({"step": 0, "wall_s": 0.0, "eval_s": round(self.eval_s, 2), "validation": self._pending})
        self._pending = None

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        step = self._step = state.global_step
        if step % self.eval_every and step < state.max_steps:
            return
        self._check(kwargs["model"], step)
        if self.share(bool(self.patience) and self._stale >= self.patience):
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

    def state_dict(self) -> dict[str, Any]:
        """Where the monitor stands, as JSON values: validations, best step, patience left, times, counts (the
        best weights, `best_state`, are the checkpoint's to save)."""
        return {
            "step": self._step,
            "history": [[point.step, point.metrics] for point in self.history],
            "best": self.best.step if self.best else None,
            "stale": self._stale,
            "stopped_early": self.stopped_early,
            "wall_s": time.perf_counter() - self._started,
            "eval_s": self.eval_s,
            "counts": dict(self.counts),
        }

    def load_state_dict(self, state: dict[str, Any], best_state: dict[str, Tensor] | None = None) -> None:
        """Take a checkpoint's state (`state_dict`) and best weights; training then resumes after its step."""
        self.history = [ValidationPoint(step, metrics) for step, metrics in state["history"]]
        self.best = next((p for p in self.history if p.step == state["best"]), None)
        self.best_state, self.best_evaluation = best_state, None  # a later stage validates the best weights again
        self._stale, self.stopped_early = state["stale"], state["stopped_early"]
        self.eval_s, self.counts = state["eval_s"], Counter(state["counts"])
        self._step, self._resumed_wall_s = state["step"], state["wall_s"]

    def _resume(self, state: TrainerState) -> None:
        """on_train_begin of a resumed run: the log keeps its lines up to the checkpoint's step (the interrupted
        run may have gone further), times go on from the checkpoint's."""
        lines = self.log_path.read_text(encoding="utf-8").splitlines() if self.log_path.exists() else []
        kept = [line for line in lines if json.loads(line)["step"] <= self._step]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        self._started = time.perf_counter() - (self._resumed_wall_s or 0.0)
        self._bar = tqdm(
            total=state.max_steps, initial=self._step, desc="training", unit="step", disable=not self.progress
        )

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
class FollowStop(TrainerCallback):
    """A distributed run's processes other than rank 0: at each of the monitor's validation steps, take its
    early-stop decision (`share`, the same call as `TrainingMonitor.share`) and stop with it.

    Args:
        eval_every: The monitor's `eval_every`.
        share: Receives rank 0's decision (`distributed.share_flag`).
    """

    eval_every: int
    share: Callable[[bool], bool]

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        step = state.global_step
        if step % self.eval_every and step < state.max_steps:
            return  # no validation at this step: nothing to share
        if self.share(False):
            control.should_training_stop = True


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
    _resumed: bool = False

    def on_epoch_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self._resumed:
            self._resumed = False
            if state.global_step % len(kwargs["train_dataloader"]):  # the trainer's steps per epoch
                return  # resumed inside an epoch that had begun: the table holds its negatives
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

    def state_dict(self) -> dict[str, Any]:
        """Refreshes so far (the round the table's negatives were drawn with), as JSON values."""
        return {"rounds": self.rounds, "epochs": self._epochs, "remined_at": list(self.remined_at)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take a checkpoint's state (`state_dict`); the table's draws come back with the table's own."""
        self.rounds, self._epochs, self.remined_at = state["rounds"], state["epochs"], list(state["remined_at"])
        self._resumed = True

    def _refresh(self) -> None:
        self.rounds += 1
        self.table.refresh(epoch=self.rounds)
