"""Data-parallel training on several processes with PyTorch's own engine: `torchrun` starts the processes (ranks),
`torch.distributed` joins them (gloo on CPU, NCCL on GPUs) and the Hugging Face trainer wraps the model in
DistributedDataParallel.

    torchrun --nproc-per-node 2 -m tbhns_opensearch train training/toys-taxonomy.toml
    tbhns train training/toys-taxonomy.toml --nproc 2          # the same, torchrun started for you

One run trains one model on N processes:

- `batch_size` stays the rows of one optimizer step (the global batch): each batch is drawn whole, as one process
  draws it (no text twice in it), and every process takes its `batch_size / N` rows (accelerate's
  `split_batches`). Every batch is full (`WholeBatches`), so every process steps on as many rows as the others;
  per epoch every training row goes to one process once, but for fewer than `batch_size` rows that wait for the
  next epoch.
- The taxonomy negatives are drawn on every process from the same (seed, epoch, query, positive), so the
  processes hold the same negatives and a run is reproducible for a given N.
- With `[loss] gather_across_devices` (mnrl, cached_mnrl) the loss gathers every process's rows
  (sentence-transformers' `gather_across_devices`): each query's softmax sees the whole global batch, as in one
  process.
- Only rank 0 validates, logs, keeps the best weights and writes the model, ONNX, manifest and card; the others
  follow its early stop (`share_flag`) and wait for it at a barrier before they exit.

`TBHNS_DEBUG_ROWS=DIR` makes each process append the (query, positive) rows of every batch it trains on to
`DIR/rows-rank<R>.jsonl` (`RowLog`), to check the split.

Example:
    >>> World.from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    World(rank=1, size=2, local_rank=1)
    >>> torchrun_args(2, ["train", "run.toml"])
    ['--standalone', '--nproc-per-node', '2', '-m', 'tbhns_opensearch', 'train', 'run.toml']
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentence_transformers.base.sampler import DefaultBatchSampler

from tbhns_opensearch.errors import ConfigError

if TYPE_CHECKING:
    from tbhns_opensearch.training.config import TrainConfig

ROWS_ENV = "TBHNS_DEBUG_ROWS"


@dataclass(frozen=True)
class World:
    """This process's place in a run: its rank, the number of processes, its rank on this machine (torchrun's
    RANK, WORLD_SIZE, LOCAL_RANK; one process without them)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> World:
        return cls(int(environ.get("RANK", 0)), int(environ.get("WORLD_SIZE", 1)), int(environ.get("LOCAL_RANK", 0)))

    @property
    def main(self) -> bool:
        """Rank 0: the process that validates, logs and writes."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def check_distributed(config: TrainConfig, processes: int) -> None:
    """Refuse, before any process starts, what a run on `processes` processes cannot do (one line each)."""
    if processes < 2:
        return
    if config.batch_size % processes:
        raise ConfigError(
            f"batch_size={config.batch_size} does not split over {processes} processes (each takes batch_size / "
            f"{processes} rows of every batch); use a multiple of {processes}"
        )
    if config.device not in ("cpu", "cuda"):
        raise ConfigError(
            f'device={config.device!r} on {processes} processes: use device = "cuda" (each process takes the GPU '
            'of its LOCAL_RANK, over NCCL) or "cpu" (gloo)'
        )
    if config.experimental.stage2 is not None:
        raise ConfigError(
            f"[experimental.stage2] runs in one process, not {processes}; train it without torchrun / --nproc"
        )


def start(world: World, device: str) -> None:
    """Join the run's process group (NCCL for `device` "cuda", on the GPU of this process's LOCAL_RANK; else
    gloo); nothing for one process. The trainer's accelerate finds the group already there."""
    import torch
    import torch.distributed as dist

    if not world.distributed or dist.is_initialized():
        return
    if device == "cuda":
        torch.cuda.set_device(world.local_rank)
    dist.init_process_group("nccl" if device == "cuda" else "gloo")


def world_size() -> int:
    """Processes in the joined group (1 without one)."""
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def barrier() -> None:
    """Wait for every process of the group (nothing without one)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def share_flag(flag: bool) -> bool:
    """Rank 0's `flag` on every process (each must call it at the same point); `flag` itself without a group."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    shared = [flag]
    dist.broadcast_object_list(shared, src=0)
    return bool(shared[0])


@contextlib.contextmanager
def main_first(world: World) -> Iterator[None]:
    """Rank 0 runs the block first (it may ingest a training catalog into OpenSearch), the others after it."""
    if not world.main:
        barrier()
    yield
    if world.main:
        barrier()


def finish() -> None:
    """Leave the process group (nothing without one)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class WholeBatches(DefaultBatchSampler):
    """The batches of a distributed run: `len(dataset) // batch_size` batches of exactly `batch_size` rows an
    epoch, each row at most once. They come from one pass of `inner` over every row (drawn with drop_last=False,
    seeded by the seed and the epoch): its full batches first, then the rows of its short ones (a pass that avoids
    repeating a text in a batch leaves some) packed into full batches in their order, where a text may repeat;
    the rest, fewer than `batch_size` rows, wait for the next epoch. sentence-transformers' own drop_last instead
    re-draws rows from a reshuffle when its pass falls short, so a row could reach two processes in one epoch.

    Give it to the trainer as `functools.partial(WholeBatches, inner=...)`, `inner` a sentence-transformers batch
    sampler class or factory (`batch_sampler_class`).

    Example:
        >>> import torch
        >>> from datasets import Dataset
        >>> from sentence_transformers.base.sampler import NoDuplicatesBatchSampler
        >>> rows = Dataset.from_dict({"anchor": ["kite", "kite", "ball", "doll", "yo-yo"], "positive": list("abcde")})
        >>> batches = WholeBatches(rows, 2, False, inner=NoDuplicatesBatchSampler, generator=torch.Generator(), seed=3)
        >>> drawn = list(batches)
        >>> [len(batch) for batch in drawn], len({row for batch in drawn for row in batch}), len(batches)
        ([2, 2], 4, 2)
    """

    def __init__(
        self, dataset: Any, batch_size: int, drop_last: bool, *, inner: Callable[..., Any], **options: Any
    ) -> None:  # options: the trainer's valid_label_columns, generator and seed, for `inner` too
        super().__init__(dataset, batch_size, drop_last, **options)
        self.rows = len(dataset)
        self.inner = inner(dataset, batch_size=batch_size, drop_last=False, **options)

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.inner.set_epoch(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        full: list[list[int]] = []
        short: list[int] = []
        for batch in self.inner:
            if len(batch) == self.batch_size:
                full.append(list(batch))
            else:
                short += batch
        packed = [short[start : start + self.batch_size] for start in range(0, len(short), self.batch_size)]
        yield from (full + packed)[: len(self)]

    def __len__(self) -> int:
        return self.rows // self.batch_size


def batch_sampler_class(batches: str | Callable[..., Any]) -> Callable[..., Any]:
    """The sentence-transformers batch sampler `batches` names ("no_duplicates", "batch_sampler"), or the factory
    itself."""
    from sentence_transformers.base.sampler import NoDuplicatesBatchSampler

    if callable(batches):
        return batches
    named = {"no_duplicates": NoDuplicatesBatchSampler, "batch_sampler": _shuffled}
    return named[batches]


def _shuffled(dataset: Any, **kwargs: Any) -> DefaultBatchSampler:
    """sentence-transformers' "batch_sampler": shuffled rows."""
    from torch.utils.data import RandomSampler

    return DefaultBatchSampler(RandomSampler(dataset, generator=kwargs.get("generator")), **kwargs)


@dataclass
class RowLog:
    """A data collator that first appends the (query, positive) of every row of the batch to `path` as one JSON
    line, then collates with `collate` (`TBHNS_DEBUG_ROWS`)."""

    collate: Callable[[list[dict[str, Any]]], Any]
    path: Path

    def __getattr__(self, name: str) -> Any:  # the trainer reads the collator's settings (valid_label_columns)
        if name == "collate":
            raise AttributeError(name)
        return getattr(self.collate, name)

    def __call__(self, features: list[dict[str, Any]]) -> Any:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps([[row["anchor"], row["positive"]] for row in features]) + "\n")
        return self.collate(features)


def row_log(collate: Callable[[list[dict[str, Any]]], Any], world: World) -> Callable[[list[dict[str, Any]]], Any]:
    """`collate` recording its rows in `$TBHNS_DEBUG_ROWS/rows-rank<R>.jsonl` when that is set, else itself."""
    folder = os.environ.get(ROWS_ENV)
    if not folder:
        return collate
    Path(folder).mkdir(parents=True, exist_ok=True)
    return RowLog(collate, Path(folder) / f"rows-rank{world.rank}.jsonl")


def torchrun_args(processes: int, args: Sequence[str]) -> list[str]:
    """torchrun's command line that runs `python -m tbhns_opensearch ARGS` on `processes` processes here."""
    return ["--standalone", "--nproc-per-node", str(processes), "-m", "tbhns_opensearch", *args]


def launch(processes: int, args: Sequence[str]) -> int:
    """Run `torchrun --standalone --nproc-per-node PROCESSES -m tbhns_opensearch ARGS` in this process (its agent
    starts the workers as children, and stops them if one fails or this process is interrupted); return the exit
    code: 0, the first failed worker's, or 128 + the signal that stopped the run."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    try:
        torchrun(torchrun_args(processes, args))
    except ChildFailedError as failed:
        _, failure = failed.get_first_failure()
        return failure.exitcode if failure.exitcode > 0 else 128 - failure.exitcode
    except SignalException as stopped:
        return 128 + int(stopped.sigval)
    return 0
