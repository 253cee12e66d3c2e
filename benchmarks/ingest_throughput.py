"""Ingest throughput by encoder runtime, side by side in one run: encode-only vs the whole ingest.

For each backend (torch, ONNX fp32, and ONNX int8 where the encoder's manifest accepted it) the same products
are (1) encoded only, in the chunks ingest uses (`IngestConfig.encode_chunk`), and (2) ingested into a fresh
index behind a benchmark alias (encode + bulk writes overlapped, refresh, alias swap), which is deleted at the
end. Reported: products/s of each, ingest as a share of its own encode-only rate (how well the writes hide
behind encoding), the speed-up over torch, and the lowest cosine between a backend's vectors and torch's.
The node runs on the same machine and shares its cores with the encoder, as in a single-box deployment.

    tbhns export all-MiniLM-L6-v2 runs/encoders/minilm       # the base model with an ONNX graph
    python benchmarks/ingest_throughput.py --encoder runs/encoders/minilm --dataset icecat --limit 5000

Writes benchmarks/results/ingest_throughput_<dataset>.md. Products are REAL (the dataset's catalog).
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from tbhns_opensearch.catalog.adapters import read_dataset
from tbhns_opensearch.cluster import make_client
from tbhns_opensearch.config import OpenSearchConfig
from tbhns_opensearch.encoder import Encoder, read_manifest
from tbhns_opensearch.index.ingest import IngestConfig, ingest_products
from tbhns_opensearch.index.templates import IndexConfig

RESULTS = Path(__file__).parent / "results"


def encode_only(encoder: Encoder, texts: Sequence[str], chunk: int) -> tuple[float, np.ndarray]:
    """Seconds to encode `texts` in ingest-sized chunks, and the vectors (n, dim)."""
    started = time.perf_counter()
    parts = [encoder.encode(texts[start : start + chunk]) for start in range(0, len(texts), chunk)]
    return time.perf_counter() - started, np.concatenate(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", required=True, help="an encoder directory with an ONNX export (tbhns export)")
    parser.add_argument("--dataset", default="icecat")
    parser.add_argument("--limit", type=int, default=5000, help="products read from the catalog")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--alias", default="bench-ingest")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    products = list(itertools.islice(read_dataset(args.dataset), args.limit))
    texts = [p.text_for_embedding() for p in products]
    backends = ["torch", "onnx"] + (["onnx-int8"] if "onnx-int8" in read_manifest(args.encoder).get("backends", []) else [])
    client = make_client(OpenSearchConfig.from_env())
    config = IngestConfig(rebuild=True, progress=False)
    rows, reference = [], None
    for backend in backends:
        encoder = Encoder(args.encoder, backend=backend, batch_size=args.batch_size)
        encoder.encode(texts[:64])  # load and warm up
        seconds, vectors = encode_only(encoder, texts, config.encode_chunk)
        reference = vectors if reference is None else reference
        alias = f"{args.alias}-{backend}"
        summary = ingest_products(client, products, encoder, IndexConfig(alias=alias), config)
        client.indices.delete(index=f"{alias}-*", ignore_unavailable=True)
        rows.append({"backend": backend, "encode_per_s": len(texts) / seconds, "ingest_per_s": summary.products_per_s,
                     "indexed": summary.indexed, "min_cosine": float(np.min(np.sum(vectors * reference, axis=1)))})  # fmt: skip
        print(rows[-1], flush=True)
    out = args.out or RESULTS / f"ingest_throughput_{args.dataset}.md"
    out.write_text(render(args, len(products), rows))
    print(out.read_text())
    return 0


def render(args: argparse.Namespace, products: int, rows: list[dict[str, float | str]]) -> str:
    torch_ingest = float(rows[0]["ingest_per_s"])
    lines = [
        f"# Ingest throughput by encoder runtime — {args.dataset}",
        "",
        f"{products} REAL {args.dataset} products (`Product.text_for_embedding`), encoder `{args.encoder}`, batch "
        f"{args.batch_size}, encode chunks of {IngestConfig().encode_chunk}, bulk chunks of {IngestConfig().bulk_chunk}; "
        "one run, every backend on the same products in the same process, the node on the same machine.",
        "",
        "| backend | encode-only products/s | ingest products/s | ingest / encode-only | ingest vs torch | min cosine to torch |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {row['backend']} | {row['encode_per_s']:.1f} | {row['ingest_per_s']:.1f} | "
                     f"{float(row['ingest_per_s']) / float(row['encode_per_s']):.0%} | "
                     f"{float(row['ingest_per_s']) / torch_ingest:.2f}x | {row['min_cosine']:.6f} |")  # fmt: skip
    lines += [
        "",
        f"Run: `python benchmarks/ingest_throughput.py --encoder {args.encoder} --dataset {args.dataset} --limit "
        f"{args.limit}` on {platform.machine()} with {os.cpu_count()} CPU cores ({torch.get_num_threads()} torch "
        f"threads; onnxruntime's default intra-op threads), 1-minute load average at the end "
        f"{os.getloadavg()[0]:.1f} (the machine is shared: read the ratios, not the absolute rates).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
