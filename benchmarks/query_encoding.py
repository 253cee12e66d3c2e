"""Query encoding latency per backend (torch, onnx, onnx-int8) of an exported encoder, one query at a time.

The queries are the 100 distinct real Icecat shopper queries. Target: p50 <= 5 ms on CPU with ONNX.
    python benchmarks/query_encoding.py runs/train/icecat-taxonomy
"""

from __future__ import annotations

import os
import sys
import time

from tbhns_opensearch.bench.latency import latency_stats
from tbhns_opensearch.catalog.adapters import load_judgments
from tbhns_opensearch.encoder import Encoder


def main(model_dir: str) -> None:
    queries = sorted({judgment.query for judgment in load_judgments("icecat")})
    print(
        f"{len(queries)} real Icecat queries, encoder {model_dir}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    print("| backend | p50 ms | p95 ms |\n|---|---:|---:|")
    for backend in ("torch", "onnx", "onnx-int8"):
        encoder = Encoder(model_dir, backend=backend)
        encoder.encode(["warm up"])
        seconds = []
        for query in queries:
            started = time.perf_counter()
            encoder.encode([query])
            seconds.append(time.perf_counter() - started)
        stats = latency_stats(seconds)
        print(f"| {backend} | {stats.p50_ms:.2f} | {stats.p95_ms:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1])
