"""`tbhns train` killed with SIGKILL after a checkpoint and resumed with `--resume` ends as a run never interrupted:
the same weights, best step, step log and model card (times aside). Real processes, the committed toys catalog,
no cluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tests.integration.training.tiny_runs import tiny_config

pytestmark = pytest.mark.integration
TBHNS = Path(sys.executable).parent / "tbhns"
WEIGHT_TOLERANCE = 1e-6  # observed 0.0 on CPU: the resumed run repeats the same float operations


def _config(tmp_path: Path) -> Path:
    """10 steps of 16 rows over 108 training pairs (7 steps an epoch, so the negatives are re-drawn at step 8),
    validated every 2 steps, a checkpoint every 3."""
    return tiny_config(tmp_path, batch_size=16, max_steps=10, eval_every=2, checkpoint_every=3)


def _train(config: Path, out: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(TBHNS), "train", str(config), "--output", str(out), *flags], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _kill_after_checkpoint(config: Path, out: Path, step: int) -> None:
    """Start `tbhns train`, SIGKILL it once checkpoint-<step> is complete (its state file is written last)."""
    process = subprocess.Popen(
        [str(TBHNS), "train", str(config), "--output", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    complete = out / "checkpoints" / f"checkpoint-{step}" / "tbhns_state.json"
    deadline = time.monotonic() + 240
    while not complete.exists():
        assert process.poll() is None, "the run ended before its checkpoint"
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL


def _card(out: Path) -> dict[str, object]:
    card = json.loads((out / "model_card.json").read_text())
    del card["training"]["wall_s"], card["training"]["eval_s"], card["config"]["output_dir"]
    return card


def _log(out: Path) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    return [{key: value for key, value in line.items() if key not in ("wall_s", "eval_s")} for line in lines]


def test_a_run_killed_after_a_checkpoint_and_resumed_ends_as_one_never_interrupted(tmp_path: Path) -> None:
    config = _config(tmp_path)
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    _train(config, whole)

    _kill_after_checkpoint(config, resumed, step=3)
    assert not (resumed / "model_card.json").exists()  # killed while training
    done = _train(config, resumed, "--resume")
    resumed_from = done.stdout.splitlines()[0]
    assert resumed_from.startswith(f"resuming from {resumed / 'checkpoints' / 'checkpoint-'}")
    assert int(resumed_from.split("checkpoint-")[1].split()[0]) < 10  # mid-run, not from the last step

    weights, again = load_file(whole / "model.safetensors"), load_file(resumed / "model.safetensors")
    max_abs_diff = max(float((weights[name] - again[name]).abs().max()) for name in weights)
    assert weights.keys() == again.keys() and max_abs_diff <= WEIGHT_TOLERANCE, max_abs_diff
    assert _card(resumed) == _card(whole)  # best step, validations, negatives by level, steps, export parity
    assert _log(resumed) == _log(whole)
    kept = sorted(path.name for path in (resumed / "checkpoints").iterdir())
    best = json.loads((whole / "model_card.json").read_text())["training"]["best_step"]
    assert kept == sorted({"checkpoint-10"} | ({f"checkpoint-{best}"} if best in (3, 6, 9) else set()))
