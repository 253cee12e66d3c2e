"""Training steps per second in one process vs N data-parallel processes (`tbhns train --nproc N`: torchrun, gloo on
CPU), at the same global batch. Not a timed test: a measurement of this machine, written to Markdown.

Each setting runs `tbhns train` as a user runs it, on the committed fixture tests/fixtures/toys_products.jsonl
(1,500 Amazon UK toys, GENERATED queries, TB-HNS leaf + sibling negatives) with training/toys-taxonomy.toml's batch
(16 rows) and length (64 tokens), validated only at step 0 and the last step. Steps per second come from the run's
own step log: the steps after the first (which pays for starting DistributedDataParallel) over their wall time less
validation. A control row runs one process with torch limited to one thread, as each of torchrun's processes is
(OMP_NUM_THREADS=1), to tell the gain of a second process from the cost of torch's thread team on busy shared
cores. The load average before each run is recorded: other work on shared cores slows every setting.

    python benchmarks/train_throughput.py --steps 20 --processes 1 2 --out benchmarks/results/train_throughput.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "tests" / "fixtures" / "toys_products.jsonl"
TBHNS = Path(sys.executable).parent / "tbhns"


@dataclass(frozen=True)
class Measured:
    """One setting's figures."""

    processes: int
    threads: str  # torch threads per process
    steps: int  # timed steps (all but the first)
    seconds: float  # their wall time less validation
    batch_size: int
    load_before: float  # 1-minute load average just before the run

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.seconds


def write_config(folder: Path, steps: int, batch_size: int, seq: int) -> Path:
    """The benchmark's training config: toys-taxonomy's settings on the committed fixture catalog."""
    config = folder / "throughput.toml"
    config.write_text(f"""
batch_size = {batch_size}
max_steps = {steps}
max_seq_length = {seq}
learning_rate = 3e-5
eval_every = {steps}
patience = 0
quantize = false
[data]
catalog = "{CATALOG}"
queries = "generated"
relevance_threshold = 2
max_eval_relevant = 20
max_positives_per_query = 4
[sampler]
name = "taxonomy"
leaf = 1
sibling = 1
""")
    return config


def measure(config: Path, out: Path, processes: int, one_thread: bool, batch_size: int) -> Measured:
    """Run `tbhns train` on `processes` processes; the steps after the first, per second of training."""
    env = {**os.environ, **({"OMP_NUM_THREADS": "1"} if one_thread else {})}
    load = os.getloadavg()[0]
    command = [str(TBHNS), "train", str(config), "--output", str(out), *(["--nproc", str(processes)] * (processes > 1))]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    lines = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    first, last = lines[1], lines[-1]
    seconds = (last["wall_s"] - last["eval_s"]) - (first["wall_s"] - first["eval_s"])
    threads = "1" if one_thread or processes > 1 else f"torch default ({os.cpu_count()})"
    return Measured(processes, threads, last["step"] - first["step"], seconds, batch_size, load)


def report(rows: list[Measured], command: str, steps: int, batch_size: int, seq: int) -> str:
    import sentence_transformers
    import torch

    base = rows[0].steps_per_s
    table = [
        "| processes | torch threads each | timed steps | train s | steps/s | rows/s | vs 1 process | load avg "
        "before |",
        "|---|---|---|---|---|---|---|---|",
        *(
            f"| {row.processes} | {row.threads} | {row.steps} | {row.seconds:.1f} | {row.steps_per_s:.2f} | "
            f"{row.steps_per_s * row.batch_size:.1f} | {row.steps_per_s / base:.2f}x | {row.load_before:.2f} |"
            for row in rows
        ),
    ]
    return "\n".join(
        [
            "# Training throughput: 1 vs N processes",
            "",
            f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} usable cores (shared with other "
            f"work), no GPU; Python {platform.python_version()}, torch {torch.__version__}, sentence-transformers "
            f"{sentence_transformers.__version__}.",
            "",
            f"Data: tests/fixtures/toys_products.jsonl (1,500 Amazon UK toys, committed), GENERATED queries, TB-HNS "
            f"leaf + sibling negatives; batch {batch_size} rows (the global batch: {batch_size} / N rows a process), "
            f"{seq} tokens, {steps} steps, validation at step 0 and the last step only (not timed).",
            "",
            f"Command:\n\n```\n{command}\n```",
            "",
            *table,
            "",
            "Steps/s: the steps after the first (which starts DistributedDataParallel) over their wall time less "
            "validation, from the run's train_log.jsonl. Rows/s: steps/s x the global batch.",
            "",
            "## Reading it",
            "",
            "- CPU processes share the cores one process's torch threads already use: on 2 cores two processes each "
            "get one thread and one core, and every step adds an all-reduce of the gradients (about 90 MB for "
            "all-MiniLM-L6-v2) and the gather of the embeddings over gloo. So on a CPU machine N processes can at best "
            "match one process using every core; the cores, not the processes, cap the rate. On CPUs, `--nproc` is "
            "for checking a distributed setup before renting GPUs, not for speed.",
            "- GPUs (untested here: this machine has no GPU): with `--device cuda` each process owns one GPU and NCCL "
            "moves the gradients over NVLink / PCIe while the backward pass runs, so at a fixed batch per GPU the "
            "rows per second should grow nearly in proportion to the GPUs until the gradient all-reduce, the input "
            "pipeline or rank 0's validation between steps becomes the limit: validate less often (eval_every) on "
            "large runs. At a fixed global batch (as here) each GPU gets fewer rows, so a step gets shorter but not "
            "N times shorter; raise batch_size with the GPUs to keep each one busy (docs/training-at-scale.md).",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "train_throughput.md")
    args = parser.parse_args()
    command = " ".join(["python", *sys.argv])
    rows: list[Measured] = []
    with tempfile.TemporaryDirectory(prefix="train-throughput-") as scratch:
        folder = Path(scratch)
        config = write_config(folder, args.steps, args.batch_size, args.seq)
        settings = [(1, False), (1, True), *((n, False) for n in args.processes if n > 1)]
        for processes, one_thread in settings:
            row = measure(config, folder / f"run-{processes}-{int(one_thread)}", processes, one_thread, args.batch_size)
            rows.append(row)
            print(f"{processes} process(es), threads {row.threads}: {row.steps_per_s:.2f} steps/s", flush=True)
    markdown = report(rows, command, args.steps, args.batch_size, args.seq)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
