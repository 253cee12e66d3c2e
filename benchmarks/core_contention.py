"""Does work on the other cores slow the encoder down? Encode-only throughput on the cores this process may use,
with the machine's other cores idle, then with each of them busy with a pure-Python loop (a stand-in for a node
indexing beside the encoder; it touches almost no memory), then idle again.

On real separate cores the rates match; where they are hyperthreads of one physical core, or a virtual machine's
vCPUs that the host schedules on shared cores, the busy rate falls: pinning the encoder and the node to
different cores (`taskset`) then cannot keep ingest at its encode-only rate, whatever the pipeline does.

    taskset -c 0 python benchmarks/core_contention.py --encoder runs/encoders/minilm --backend onnx

Products are the first `--limit` REAL titles of `--dataset`. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from itertools import islice

from tbhns_opensearch.bench.throughput import encode_only
from tbhns_opensearch.catalog.adapters import read_dataset
from tbhns_opensearch.encoder import Encoder


def encode_rate(encoder: Encoder, texts: Sequence[str]) -> float:
    """Products per second encoding `texts` in ingest-sized chunks."""
    return len(texts) / encode_only(encoder, texts)[1]


def spin_on(cores: Sequence[int]) -> list[subprocess.Popen[bytes]]:
    """One busy pure-Python loop pinned to each of `cores`."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in cores]
    for loop, core in zip(loops, cores):
        os.sched_setaffinity(loop.pid, {core})
    return loops


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", default="all-MiniLM-L6-v2")
    parser.add_argument("--backend", default="onnx")
    parser.add_argument("--dataset", default="homedepot")
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=2, help="timed passes per condition")
    args = parser.parse_args(argv)
    mine = sorted(os.sched_getaffinity(0))
    others = [core for core in range(os.cpu_count() or 1) if core not in mine]
    if not others:
        parser.error("this process may use every core; pin it to some of them, e.g. `taskset -c 0 python ...`")
    texts = [product.text_for_embedding() for product in islice(read_dataset(args.dataset, None), args.limit)]
    encoder = Encoder(args.encoder, backend=args.backend, bulk=True)
    encoder.encode(texts[:64])  # load the model outside the timings
    rows: list[tuple[str, float]] = []
    for condition in ("other cores idle", "other cores busy", "other cores idle again"):
        loops = spin_on(others) if condition == "other cores busy" else []
        try:
            rows += [(condition, encode_rate(encoder, texts)) for _ in range(args.repeats)]
        finally:
            for loop in loops:
                loop.kill()
                loop.wait()
    idle = max(rate for condition, rate in rows if "idle" in condition)
    print(
        f"{len(texts)} REAL {args.dataset} titles, encoder `{args.encoder}` ({encoder.backend}) on CPU "
        f"{','.join(map(str, mine))}; busy loops on CPU {','.join(map(str, others))}\n"
    )
    print("| condition | encode-only products/s | vs best idle |\n|---|---:|---:|")
    for condition, rate in rows:
        print(f"| {condition} | {rate:.1f} | {rate / idle:.0%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
