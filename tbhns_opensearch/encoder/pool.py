"""Catalog encoding fanned out over worker processes: N on the CPU, or one per listed device (`cuda:0,cuda:1`).

The standard library's `concurrent.futures.ProcessPoolExecutor` runs the workers, spawned (as
sentence-transformers' own multi-process pool spawns them, so CUDA works in each). Every worker builds its own
`Encoder` of the same model, backend, batch size and sequence length on its device the first time it is asked,
so each backend (torch, torch-bf16, onnx, onnx-int8) fans out the same way. This module adds only what keeps
order and memory bounded: chunks are submitted in order, at most `IN_FLIGHT_PER_WORKER` per worker wait, and
results come back in submission order whichever worker finished first.

Workers split the cores this process may use (each pinned to its share, with as many threads), so N
processes never oversubscribe the machine; past one worker per core they share cores.

Lifetime: the workers start on first use and stop at `close()` (`Encoder.close`, or the end of its with-block),
which cancels the chunks not yet started, lets the running ones finish and joins every worker. Workers ignore
SIGINT (Ctrl-C reaches the whole process group; the parent's close stops them). A worker whose parent dies
(kill -9) exits at once: a thread in it waits on the parent's sentinel (`multiprocessing.parent_process()`, a
pipe the kernel closes with the parent) and ends the process, so no orphan is left running.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from tbhns_opensearch.errors import EncoderError

if TYPE_CHECKING:
    from tbhns_opensearch.encoder import Encoder

K = TypeVar("K")
IN_FLIGHT_PER_WORKER = 2  # chunks submitted ahead per worker: one running, one queued, so none waits for the parent


@dataclass(frozen=True)
class WorkerSettings:
    """What each worker's `Encoder` is built with (its device comes from its slot)."""

    name_or_path: str
    backend: str  # resolved, never "auto": every worker runs what the parent chose
    batch_size: int
    max_seq_length: int | None


def core_shares(cores: Sequence[int], workers: int) -> list[tuple[int, ...]]:
    """The cores of each of `workers` workers: contiguous, near-equal shares of `cores`, or one core each
    (shared round robin) when there are more workers than cores.

    Example:
        >>> core_shares([0, 1, 2, 3, 4], 2)
        [(0, 1), (2, 3, 4)]
        >>> core_shares([0, 1], 3)
        [(0,), (1,), (0,)]
    """
    if workers >= len(cores):
        return [(cores[i % len(cores)],) for i in range(workers)]
    bounds = [i * len(cores) // workers for i in range(workers + 1)]
    return [tuple(cores[bounds[i] : bounds[i + 1]]) for i in range(workers)]


class EncoderPool:
    """Worker processes that encode chunks of texts, one `Encoder` each, started on first use.

    Args:
        settings: The model, backend, batch size and sequence length every worker loads.
        devices: One entry per worker (["cpu", "cpu"], ["cuda:0", "cuda:1"]).

    Example:
        >>> pool = EncoderPool(WorkerSettings("all-MiniLM-L6-v2", "torch", 32, None), ["cpu", "cpu"])
        >>> pool.pids  # nothing started yet
        []
        >>> [v.shape for _, v in pool.map([("a", ["usb-c cable"]), ("b", ["lego", "puzzle"])], 32)]  # doctest: +SKIP
        [(1, 384), (2, 384)]
        >>> pool.close()
    """

    def __init__(self, settings: WorkerSettings, devices: Sequence[str]) -> None:
        self.settings, self.devices = settings, list(devices)
        self._executor: ProcessPoolExecutor | None = None

    @property
    def pids(self) -> list[int]:
        """The worker processes running now (none before first use or after `close`)."""
        processes = getattr(self._executor, "_processes", None) or {}
        return sorted(pid for pid, process in processes.items() if process.is_alive())

    def _start(self) -> ProcessPoolExecutor:
        if self._executor is None:
            context = multiprocessing.get_context("spawn")
            slots = context.SimpleQueue()  # each worker takes one (device, cores) as it starts
            cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
            shares = core_shares(cores, len(self.devices)) if cores else [()] * len(self.devices)
            for slot in zip(self.devices, shares):
                slots.put(slot)
            self._executor = ProcessPoolExecutor(
                len(self.devices), mp_context=context, initializer=_start_worker, initargs=(slots, self.settings)
            )
        return self._executor

    def dimension(self) -> int:
        """The vector dimension, from a worker (which loads the model: a bad device or model fails here)."""
        return int(_result(self._start().submit(_dimension)))

    def map(self, chunks: Iterable[tuple[K, Sequence[str]]], batch_size: int) -> Iterator[tuple[K, np.ndarray]]:
        """(key, vectors (len(texts), dim)) of each (key, texts) of `chunks`, encoded in batches of `batch_size`,
        in the order of `chunks`; the keys stay in this process. Reads `chunks` at most `IN_FLIGHT_PER_WORKER`
        per worker ahead of what it yields; chunks still pending when the caller stops are cancelled."""
        executor = self._start()
        pending: deque[tuple[K, Future[np.ndarray]]] = deque()
        limit = IN_FLIGHT_PER_WORKER * len(self.devices)
        try:
            for key, texts in chunks:
                pending.append((key, executor.submit(_encode, list(texts), batch_size)))
                if len(pending) >= limit:
                    key, future = pending.popleft()
                    yield key, _result(future)
            while pending:
                key, future = pending.popleft()
                yield key, _result(future)
        finally:
            for _, future in pending:
                future.cancel()

    def close(self) -> None:
        """Cancel the chunks not started, let the running ones finish, and join every worker."""
        if self._executor is not None:
            executor, self._executor = self._executor, None
            executor.shutdown(wait=True, cancel_futures=True)


def _result(future: Future[Any]) -> Any:
    try:
        return future.result()
    except BrokenProcessPool as exc:
        raise EncoderError(
            f"an encoder worker process died ({exc}); its own error, if it printed one, is above. A script that "
            "fans encoding out needs its code under `if __name__ == '__main__':` (workers are spawned); out of "
            "memory: rerun with fewer --encode-workers or a smaller --batch-size"
        ) from exc


# Inside a worker process: its device and its encoder, loaded on first use.
_WORKER: dict[str, Any] = {}


def _start_worker(slots: Any, settings: WorkerSettings) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    threading.Thread(target=_exit_with_parent, daemon=True, name="exit-with-parent").start()
    device, cores = slots.get()
    if cores:
        os.sched_setaffinity(0, cores)
    _WORKER.update(device=device, settings=settings)


def _exit_with_parent() -> None:
    """Wait for the parent's sentinel (closed by the kernel when the parent dies, kill -9 included), then exit."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        parent.join()
        os._exit(1)


def _encoder() -> Encoder:
    if "encoder" not in _WORKER:
        from tbhns_opensearch.encoder import Encoder, usable_cores  # the package imports this module

        settings: WorkerSettings = _WORKER["settings"]
        if settings.backend.startswith("torch"):
            import torch

            torch.set_num_threads(usable_cores())  # this worker's share of the cores
        encoder = Encoder(
            settings.name_or_path,
            device=_WORKER["device"],
            batch_size=settings.batch_size,
            backend=settings.backend,
            max_seq_length=settings.max_seq_length,
        )
        encoder.runtime  # noqa: B018  load now: a bad device or model fails on the first call
        _WORKER["encoder"] = encoder
    return _WORKER["encoder"]


def _dimension() -> int:
    return _encoder().dimension


def _encode(texts: list[str], batch_size: int) -> np.ndarray:
    return _encoder().encode(texts, batch_size)  # (len(texts), dim)
