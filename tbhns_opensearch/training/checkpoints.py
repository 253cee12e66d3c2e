"""Checkpoints of a training run, and resuming from the newest one after a kill (`tbhns train --resume`).

With `checkpoint_every = N` sentence-transformers' trainer (Hugging Face's underneath) saves
`<output_dir>/checkpoints/checkpoint-<step>/` every N steps and at the last step (`save_strategy="steps"`),
holding the weights, the optimizer and scheduler, the RNG states and the trainer's state; its
`resume_from_checkpoint` reads them back and skips the batches already trained on. `Checkpoints.on_save` adds
what the trainer does not hold and an identical continuation needs, in `tbhns_state.json` (written last, so a
checkpoint without it is incomplete and never resumed from):

- the config's fingerprint and the training data's digest (a checkpoint resumes only the run that wrote it);
- the validation monitor: validations so far, best step, validations without improvement, times, loss counts
  (and the best weights so far in `tbhns_best.safetensors`);
- the negatives: every row's current draws, the refresh round (`NegativeRefresh`) and the sampler's log (the
  card's level counts); ANCE's mined hits, which came from the weights they were mined with.

Then it prunes (our own pruning, not the trainer's `save_total_limit`, which knows a best checkpoint only by
its own evaluation metric): the newest checkpoint and the best one (saved at the monitor's best step, when a
checkpoint was) stay, the others go.

Example:
    >>> from tbhns_opensearch.training.config import DataConfig
    >>> identity = run_identity(TrainConfig(data=DataConfig(dataset="icecat")))
    >>> identity["max_steps"], "output_dir" in identity  # what is trained, not where
    (200, False)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from tbhns_opensearch.errors import ConfigError
from tbhns_opensearch.training.config import TrainConfig
from tbhns_opensearch.training.data import TrainingData

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from tbhns_opensearch.training.monitor import TrainingMonitor

CHECKPOINTS = "checkpoints"  # under the run's output_dir
PREFIX = "checkpoint-"  # the trainer's folder names: checkpoint-<step>
STATE_FILE = "tbhns_state.json"
BEST_WEIGHTS = "tbhns_best.safetensors"
STATE_VERSION = 1
RESUME_FREE = ("output_dir", "device", "checkpoint_every", "quantize", "int8_tolerance", "personalization")
"""TrainConfig fields a resumed run may change: where the run lives and runs, how often it saves, and what
happens after training (export, the user model); every other field must match the checkpoint's."""


class Stateful(Protocol):
    """What a checkpoint holds a part of the run by: its state as JSON values, and back."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def checkpoints_dir(config: TrainConfig) -> Path:
    """Where `config`'s run keeps its checkpoints: `<output_dir>/checkpoints`."""
    return Path(config.output_dir) / CHECKPOINTS


def run_identity(config: TrainConfig) -> dict[str, Any]:
    """The config as JSON values without the fields a resumed run may change (`RESUME_FREE`)."""
    values = {key: value for key, value in asdict(config).items() if key not in RESUME_FREE}
    return json.loads(json.dumps(values, sort_keys=True, default=str))  # tuples as lists, as the file holds them


def fingerprint(identity: Mapping[str, Any]) -> str:
    """16 hex digits of `identity` (`run_identity`)."""
    return hashlib.blake2b(json.dumps(identity, sort_keys=True).encode(), digest_size=8).hexdigest()


def data_digest(data: TrainingData) -> str:
    """16 hex digits of the training rows (query, positive) in order and the catalog's product ids."""
    digest = hashlib.blake2b(digest_size=8)
    for pair in data.train_pairs:
        digest.update(f"{pair.query}\t{pair.positive_id}\n".encode())
    digest.update("\n".join(p.id for p in data.products).encode())
    return digest.hexdigest()


def saved_checkpoints(directory: Path) -> list[Path]:
    """The complete checkpoints in `directory` (those with `tbhns_state.json`), oldest step first."""
    found = [path for path in checkpoint_folders(directory) if (path / STATE_FILE).is_file()]
    return sorted(found, key=lambda path: _step(path) or 0)


def checkpoint_folders(directory: Path) -> list[Path]:
    """The trainer's `checkpoint-<step>` folders in `directory`, complete or not: the only paths a run removes
    there (anything else in the folder is left alone)."""
    if not directory.is_dir():
        return []
    return [path for path in directory.iterdir() if _step(path) is not None and path.is_dir()]


def find_checkpoint(config: TrainConfig) -> Path:
    """The newest complete checkpoint of `config`'s run, written by the same config (`run_identity`);
    otherwise a one-line `ConfigError` that names the fix.

    Example:
        >>> find_checkpoint(load_train_config("training/toys-taxonomy.toml"))  # doctest: +SKIP
        PosixPath('runs/train/toys-taxonomy/checkpoints/checkpoint-150')
    """
    directory = checkpoints_dir(config)
    found = saved_checkpoints(directory)
    if not found:
        raise ConfigError(
            f"--resume: no complete checkpoint in {directory}; give the --output of the run that saved them "
            f"(a run saves them with checkpoint_every > 0), or leave out --resume to start at step 0"
        )
    newest = found[-1]
    saved = read_state(newest)
    identity = run_identity(config)
    if saved.get("fingerprint") != fingerprint(identity):
        changed = _changed_keys(saved.get("config", {}), identity)
        raise ConfigError(
            f"--resume: {newest} was saved by another config (it differs in {', '.join(changed) or 'its version'}); "
            "resume with the config that saved it, or give another --output to start this config at step 0"
        )
    return newest


def read_state(checkpoint: Path) -> dict[str, Any]:
    """A checkpoint's `tbhns_state.json`."""
    try:
        state: dict[str, Any] = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"--resume: {checkpoint / STATE_FILE} cannot be read ({exc}); delete {checkpoint} to resume from the "
            "checkpoint before it"
        ) from exc
    return state


def clear_checkpoints(directory: Path) -> None:
    """Remove the checkpoints an earlier run left in `directory` (a run that starts at step 0 supersedes them)."""
    for path in checkpoint_folders(directory):
        shutil.rmtree(path, ignore_errors=True)


def plan_checkpoints(
    config: TrainConfig,
    data: TrainingData,
    parts: dict[str, Stateful],
    monitor: TrainingMonitor | None,
    resume_from: Path | None,
    *,
    main: bool = True,
    barrier: Callable[[], None] | None = None,
) -> Checkpoints | None:
    """The run's `Checkpoints`, restored from `resume_from` (`find_checkpoint`) when given; None when the run
    neither saves (`checkpoint_every = 0`) nor resumes. A run that starts at step 0 first removes the
    checkpoints an earlier run left in its folder."""
    if not config.checkpoint_every and resume_from is None:
        return None
    directory = checkpoints_dir(config)
    if resume_from is None and main:
        clear_checkpoints(directory)
    checkpoints = Checkpoints(
        directory, config.checkpoint_every, config, data, parts, monitor, resume_from, main=main, barrier=barrier
    )
    checkpoints.restore()
    return checkpoints


@dataclass
class Checkpoints(TrainerCallback):
    """Saves the run's own state beside each trainer checkpoint, prunes, and restores it on resume (module
    docstring).

    Args:
        directory: The trainer's output_dir, `<output_dir>/checkpoints`.
        every: Steps between checkpoints (0: none; a resumed run may still read one).
        config: The run (its fingerprint is saved, and checked on resume).
        data: The run's data (its digest is saved, and checked on resume).
        parts: The parts saved in the state file by name, e.g. {"table": ..., "refresh": ...}.
        monitor: The validation monitor (its state and best weights), on the process that validates.
        resume_from: The checkpoint to resume from (`find_checkpoint`), or None.
        main: This process writes the files (rank 0 of a distributed run).
        barrier: Waits for every process (a distributed run's), before the state file marks a checkpoint complete.
    """

    directory: Path
    every: int
    config: TrainConfig
    data: TrainingData
    parts: dict[str, Stateful]
    monitor: TrainingMonitor | None = None
    resume_from: Path | None = None
    main: bool = True
    barrier: Callable[[], None] | None = None
    resumed: dict[str, Any] = field(default_factory=dict)  # the state read by `restore`

    def restore(self) -> None:
        """Load `resume_from`'s state into the parts and the monitor; ConfigError if the data changed since."""
        if self.resume_from is None:
            return
        state = read_state(self.resume_from)
        if state.get("data") != data_digest(self.data):
            raise ConfigError(
                f"--resume: the training data changed since {self.resume_from} was saved (other queries, pairs or "
                "products); resume with the data it was trained on, or give another --output to start at step 0"
            )
        for name, part in self.parts.items():
            part.load_state_dict(state["parts"][name])
        if self.monitor is not None:
            from safetensors.torch import load_file

            best = self.resume_from / BEST_WEIGHTS
            self.monitor.load_state_dict(state["parts"]["monitor"], load_file(best) if best.is_file() else None)
        self.resumed = state

    @property
    def resumed_step(self) -> int:
        """The step the run resumed at (0: it did not)."""
        return int(self.resumed.get("step", 0))

    @property
    def resumed_wall_s(self) -> float:
        """Seconds the run had trained for when its checkpoint was saved (0.0: it did not resume)."""
        return float(self.resumed.get("parts", {}).get("monitor", {}).get("wall_s", 0.0))

    def finished(self, max_steps: int) -> bool:
        """The checkpoint resumed from was saved at the end of training (the last step, or an early stop)."""
        monitor = self.resumed.get("parts", {}).get("monitor", {})
        return bool(self.resumed) and (self.resumed_step >= max_steps or bool(monitor.get("stopped_early")))

    def load_weights(self, model: SentenceTransformer) -> None:
        """The weights of the checkpoint resumed from, into `model` (when training had finished there)."""
        if self.resume_from is None:
            return
        from sentence_transformers import SentenceTransformer

        saved = SentenceTransformer(str(self.resume_from), device="cpu", local_files_only=True)
        model.load_state_dict(saved.state_dict())

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        checkpoint = Path(args.output_dir) / f"{PREFIX}{state.global_step}"
        if self.barrier is not None:
            self.barrier()  # every process has written its part of the checkpoint (its RNG state)
        if not self.main:
            return
        if self.monitor is not None and self.monitor.best_state is not None:
            from safetensors.torch import save_file

            save_file(
                {name: value.contiguous() for name, value in self.monitor.best_state.items()}, checkpoint / BEST_WEIGHTS
            )
        parts = {name: part.state_dict() for name, part in self.parts.items()}
        if self.monitor is not None:
            parts["monitor"] = self.monitor.state_dict()
        identity = run_identity(self.config)
        saved = {
            "version": STATE_VERSION,
            "step": state.global_step,
            "fingerprint": fingerprint(identity),
            "config": identity,
            "data": data_digest(self.data),
            "world_size": args.world_size,
            "parts": parts,
        }
        partial = checkpoint / f"{STATE_FILE}.partial"
        partial.write_text(json.dumps(saved), encoding="utf-8")
        os.replace(partial, checkpoint / STATE_FILE)  # the checkpoint is complete from here on
        self._prune(checkpoint)

    def _prune(self, newest: Path) -> None:
        """Keep the newest checkpoint and the one saved at the best step; remove the others."""
        best = self.monitor.best.step if self.monitor is not None and self.monitor.best else None
        for path in checkpoint_folders(self.directory):
            if path != newest and _step(path) != best:
                shutil.rmtree(path, ignore_errors=True)


def _step(path: Path) -> int | None:
    """The step of a `checkpoint-<step>` folder, else None."""
    tail = path.name.removeprefix(PREFIX)
    return int(tail) if path.name.startswith(PREFIX) and tail.isdigit() else None


def _changed_keys(saved: Mapping[str, Any], current: Mapping[str, Any], where: str = "") -> list[str]:
    """The keys (table.key) whose values differ between two `run_identity` dicts."""
    changed: list[str] = []
    for key in sorted(set(saved) | set(current)):
        before, after = saved.get(key), current.get(key)
        if isinstance(before, dict) and isinstance(after, dict):
            changed += _changed_keys(before, after, f"{where}{key}.")
        elif before != after:
            changed.append(f"{where}{key}")
    return changed
