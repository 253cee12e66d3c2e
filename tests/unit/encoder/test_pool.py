"""Encoding fanned out over worker processes (`Encoder(workers=N)`, `encoder.pool`): the single process's
vectors, in input order, and no worker left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tbhns_opensearch.encoder import Encoder, worker_devices
from tbhns_opensearch.errors import EncoderError

TOLERANCE = 1e-6  # max abs difference per coordinate of unit vectors: threads split the sums differently
TEXTS = [
    "usb-c cable 2 m",
    "wooden train set with 40 pieces, bridge and tunnel",
    "lego",
    "plush teddy bear",
    "remote control racing car, 1:16 scale, rechargeable battery, for kids from 8 years",
    "jigsaw puzzle 1000 pieces",
    "magnetic drawing board",
    "doll house with furniture and four dolls",
    "kite",
    "board game for the whole family, 2 to 6 players",
    "stacking cups",
    "science kit: crystals, volcano and slime",
    "water pistol",
    "building blocks in a bucket",
]


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (an exited one not yet reaped, a zombie, is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def single() -> np.ndarray:
    return Encoder().encode(TEXTS)  # (n, dim), today's in-process path


def test_two_workers_give_the_single_process_vectors_in_order_and_stop_at_close(single: np.ndarray) -> None:
    with Encoder(workers=2) as encoder:
        assert encoder.pool is not None and encoder.pool.pids == []  # nothing starts before the first use
        fanned = encoder.encode(TEXTS)  # (n, dim)
        chunks = [(f"chunk-{i}", TEXTS[start:end]) for i, (start, end) in enumerate([(0, 5), (5, 6), (6, 14)])]
        streamed = list(encoder.encode_batches(iter(chunks)))
        pids = encoder.pool.pids
    assert len(pids) == 2 and os.getpid() not in pids
    assert fanned.dtype == np.float32 and fanned.shape == single.shape
    np.testing.assert_allclose(fanned, single, rtol=0, atol=TOLERANCE)
    assert [key for key, _ in streamed] == ["chunk-0", "chunk-1", "chunk-2"]
    np.testing.assert_allclose(np.concatenate([v for _, v in streamed]), single, rtol=0, atol=TOLERANCE)
    assert not any(_running(pid) for pid in pids)  # close joined them
    assert encoder.pool.pids == []


def test_one_worker_is_the_in_process_path() -> None:
    encoder = Encoder(workers=1)
    assert encoder.pool is None and encoder.devices == ["cpu"]


SCRIPT = """
import sys, time
from tbhns_opensearch.encoder import Encoder

if __name__ == "__main__":
    encoder = Encoder(workers=2)
    encoder.encode(["a", "b", "c", "d"])
    print(" ".join(map(str, encoder.pool.pids)), flush=True)
    time.sleep(300)
"""


def test_workers_exit_when_their_parent_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(SCRIPT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pids = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(map(_running, pids))
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 30
    while any(map(_running, pids)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(map(_running, pids)), f"workers {pids} outlived their killed parent"


@pytest.mark.parametrize(
    ("device", "workers", "message"),
    [
        ("cpu", 0, "--encode-workers 0: encoder processes must be 1 or more; pass 1 to encode in this process"),
        ("cuda:0,gpu1", 1, "'gpu1' is not a device; pass one device (cpu, cuda, cuda:1) or a comma list"),
        ("cuda:0,", 1, "'' is not a device"),
        ("cpu,cpu", 3, "a device list starts one encoder process per device; pass either the list or"),
    ],
)
def test_a_bad_worker_setting_is_one_line_naming_the_fix(device: str, workers: int, message: str) -> None:
    with pytest.raises(EncoderError) as caught:
        Encoder(device=device, workers=workers)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_device_list_is_one_worker_per_device() -> None:
    assert worker_devices("cpu,cpu", 1) == worker_devices("cpu, cpu", 2) == ["cpu", "cpu"]
    assert worker_devices("cpu", 3) == ["cpu", "cpu", "cpu"]


def test_a_cuda_device_this_machine_lacks_is_named() -> None:
    import torch

    missing = f"cuda:{torch.cuda.device_count()}"
    with pytest.raises(EncoderError, match=f"'{missing}' is not on this machine, which has .*; list only this"):
        worker_devices(f"cpu,{missing}", 1)


def test_one_cuda_device_this_machine_lacks_is_refused_before_anything_loads() -> None:
    import torch

    missing = f"cuda:{torch.cuda.device_count()}"  # cuda:0 on a CPU machine: torch failed on it with a traceback
    with pytest.raises(EncoderError) as caught:
        Encoder(device=missing)
    assert str(caught.value).startswith(f"--device '{missing}': '{missing}' is not on this machine, which has ")
    assert str(caught.value).endswith("; run on a machine with it, or pass --device cpu")
