"""Products encoded per second in one process vs fanned out over N processes (`Encoder(workers=N)`), as
`tbhns ingest --encode-workers N` encodes a catalog: chunks of `IngestConfig.encode_chunk` products through
`Encoder.encode_batches`, in catalog order. Not a timed test: a measurement of this machine, written to Markdown.

The catalog is the committed fixture tests/fixtures/toys_products.jsonl (1,500 Amazon UK toys) repeated
`--repeat` times (so the same texts are encoded again; each product's `text_for_embedding`, as ingest encodes it).
Each setting is timed after a warm-up that starts its workers and loads the model in each (reported apart:
a command pays it once). The machine's load average is recorded beside each figure: other work on shared cores
slows every setting, so the settings are measured in turn, `--rounds` times.

A control row times one process with torch limited to one thread (what each of 2 workers on 2 cores runs), to
tell the gain of a second process from the cost of torch's thread team on busy shared cores.

    python benchmarks/encode_throughput.py --repeat 2 --rounds 2 --workers 1 2 \
        --out benchmarks/results/encode_throughput.md
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tbhns_opensearch.catalog import read_catalog
from tbhns_opensearch.config import DEFAULT_ENCODER
from tbhns_opensearch.encoder import Encoder, usable_cores
from tbhns_opensearch.index.ingest import IngestConfig

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "tests" / "fixtures" / "toys_products.jsonl"


@dataclass(frozen=True)
class Measured:
    """One setting's figures."""

    workers: int
    threads: int  # torch threads per process
    backend: str
    products: int
    startup_s: float  # spawn the workers and load the model in each (or here, for one process)
    seconds: float  # encoding every product, after the warm-up
    load_before: float  # 1-minute load average just before the timed pass

    @property
    def per_s(self) -> float:
        return self.products / self.seconds


def measure(
    texts: list[str], workers: int, encoder_name: str, backend: str, chunk: int, threads: int | None = None
) -> Measured:
    """Time `workers` processes encoding `texts` in chunks of `chunk`, as ingest feeds them; `threads`: torch
    threads of the one process (None: torch's default, as `tbhns ingest` runs)."""
    import torch

    default_threads = torch.get_num_threads()
    torch.set_num_threads(threads or default_threads)
    with Encoder(encoder_name, backend=backend, bulk=True, workers=workers) as encoder:
        started = time.perf_counter()
        encoder.encode(texts[: 2 * workers * 16])  # warm-up: every worker started, model loaded
        startup = time.perf_counter() - started
        load = os.getloadavg()[0]
        started = time.perf_counter()
        chunks = ((start, texts[start : start + chunk]) for start in range(0, len(texts), chunk))
        encoded = sum(len(vectors) for _, vectors in encoder.encode_batches(chunks))
        seconds = time.perf_counter() - started
    torch.set_num_threads(default_threads)
    per_process = threads or (default_threads if workers == 1 else max(1, usable_cores() // workers))
    return Measured(workers, per_process, encoder.backend, encoded, startup, seconds, load)


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def report(results: Sequence[Measured], command: str, data: str) -> str:
    import sentence_transformers
    import torch

    rows = []
    for position, r in enumerate(results):
        base = next(b for b in reversed(results[: position + 1]) if b.workers == 1 and b.threads != 1)  # its round's
        rows.append(
            f"| {r.workers} | {r.threads} | {r.backend} | {r.products:,} | {r.startup_s:.1f} | {r.seconds:.1f} | "
            f"{r.per_s:.1f} | {r.per_s / base.per_s:.2f}x | {r.load_before:.2f} |"
        )
    return "\n".join(
        [
            "# Catalog encoding: 1 vs N processes",
            "",
            f"Machine: {cpu_name()}, {usable_cores()} usable cores (shared with other work), no GPU; "
            f"Python {platform.python_version()}, torch {torch.__version__}, "
            f"sentence-transformers {sentence_transformers.__version__}.",
            "",
            f"Data: {data}.",
            "",
            "Command:",
            "",
            "```",
            command,
            "```",
            "",
            "| processes | torch threads each | backend | products | startup s | encode s | products/s "
            "| vs 1 process (its round) | load avg before |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            "Startup is spawning the workers and loading the model in each (one process: loading it here); a "
            "command pays it once. Products/s counts the encoding alone, chunks of "
            f"{IngestConfig().encode_chunk} products as `tbhns ingest` sends them, vectors back in catalog order.",
            "",
            "## Reading it",
            "",
            f"- CPU processes share the cores one process's torch threads already use ({usable_cores()} here): on "
            "an idle machine N processes can at best match one process, and the cores cap what they gain. What "
            "they change is how encoding behaves when the cores are busy with other work: each worker runs one "
            "pinned thread per core of its share, so none waits on a stalled thread team. Compare rows of the "
            "same round, and read the load average beside them: these cores are shared.",
            "- GPUs: with a device list (`--device cuda:0,cuda:1`) each process owns its device, so the encoding "
            "rate should grow with the number of devices until reading the catalog, building the documents or "
            "the bulk writes to OpenSearch become the limit. Untested here: this machine has no GPU.",
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="copies of the 1,500-product toys fixture")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="process counts; start with 1")
    parser.add_argument("--rounds", type=int, default=2, help="times every setting is measured, in turn")
    parser.add_argument("--encoder", default=DEFAULT_ENCODER)
    parser.add_argument("--backend", default="auto", help="as `tbhns ingest --backend` (auto for a catalog)")
    parser.add_argument("--out", type=Path, help="Markdown report [default: print]")
    args = parser.parse_args(argv)
    texts = [product.text_for_embedding() for product in read_catalog(CATALOG)] * args.repeat
    chunk = IngestConfig().encode_chunk
    if args.workers[0] != 1:
        parser.error("--workers must start with 1: the other settings are compared with it")
    settings = [(args.workers[0], None), (1, 1), *((workers, None) for workers in args.workers[1:])]  # (1, 1): control
    results = []
    for _ in range(args.rounds):
        for workers, threads in settings:
            results.append(measure(texts, workers, args.encoder, args.backend, chunk, threads))
            print(results[-1], f"{results[-1].per_s:.1f} products/s", flush=True)
    command = "python benchmarks/encode_throughput.py " + " ".join(
        [f"--repeat {args.repeat}", f"--rounds {args.rounds}", "--workers " + " ".join(map(str, args.workers))]
        + ([f"--encoder {args.encoder}"] if args.encoder != DEFAULT_ENCODER else [])
        + ([f"--backend {args.backend}"] if args.backend != "auto" else [])
        + ([f"--out {args.out}"] if args.out else [])
    )
    data = f"tests/fixtures/toys_products.jsonl (1,500 Amazon UK toys, committed) repeated {args.repeat}x"
    text = report(results, command, data)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
