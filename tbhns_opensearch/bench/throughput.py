"""Ingest throughput next to the encoder's encode-only throughput, on the same products and cores, for one or
more encoder runtimes side by side (torch, ONNX fp32, gated ONNX int8).

Example:
    >>> results = compare_backends(client, products, "runs/encoders/minilm", ["torch", "onnx"],
    ...                            IndexConfig(alias="bench-ingest"))  # doctest: +SKIP
    >>> [r.backend for r in results], [r.batch_size for r in results]  # doctest: +SKIP
    (['torch', 'onnx'], [32, 32])
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from opensearchpy import OpenSearch

from tbhns_opensearch.catalog.product import Product
from tbhns_opensearch.encoder import Encoder
from tbhns_opensearch.index.ingest import IngestConfig, ingest_products
from tbhns_opensearch.index.templates import IndexConfig


@dataclass(frozen=True)
class ThroughputResult:
    """Products per second for encoding alone and for the whole ingest (encode + bulk write + refresh)."""

    products: int
    batch_size: int
    encode_only_per_s: float
    ingest_per_s: float
    backend: str = "torch"
    min_cosine: float = 1.0  # lowest cosine of this runtime's vectors to the first compared runtime's

    @property
    def ratio(self) -> float:
        """Ingest throughput as a share of encode-only throughput (target: >= 0.8)."""
        return self.ingest_per_s / self.encode_only_per_s


def encode_only(
    encoder: Encoder, texts: Sequence[str], chunk: int = IngestConfig().encode_chunk
) -> tuple[np.ndarray, float]:
    """The vectors (n, dim) of `texts`, encoded `chunk` at a time as ingest encodes them, and the seconds it took."""
    started = time.perf_counter()
    vectors = np.concatenate(
        [encoder.encode(list(texts[begin : begin + chunk])) for begin in range(0, len(texts), chunk)]
    )
    return vectors, time.perf_counter() - started


def measure_ingest_throughput(
    client: OpenSearch,
    products: Sequence[Product],
    encoder: Encoder,
    index_config: IndexConfig,
    config: IngestConfig | None = None,
) -> tuple[ThroughputResult, np.ndarray]:
    """Encode `products` once without writing, then ingest them into a fresh index behind `index_config.alias`;
    the encode-only vectors (n, dim) come back too."""
    config = config or IngestConfig(rebuild=True, progress=False)
    encoder.encode([products[0].text_for_embedding()])  # load the model outside the timings
    vectors, encode_s = encode_only(
        encoder, [product.text_for_embedding() for product in products], config.encode_chunk
    )
    summary = ingest_products(client, products, encoder, index_config, config)
    result = ThroughputResult(
        products=len(products),
        batch_size=encoder.batch_size,
        backend=encoder.backend,
        encode_only_per_s=len(products) / encode_s,
        ingest_per_s=summary.products_per_s,
    )
    return result, vectors


def compare_backends(
    client: OpenSearch,
    products: Sequence[Product],
    encoder: str,
    backends: Sequence[str],
    index_config: IndexConfig,
    batch_size: int | None = None,
) -> list[ThroughputResult]:
    """`measure_ingest_throughput` for each runtime of `encoder` in turn, on the same products, each at
    `batch_size` (None: the runtime's default); each result's `min_cosine` compares its vectors with the first
    runtime's. "auto" resolves as ingest resolves it (bulk)."""
    results: list[ThroughputResult] = []
    reference: np.ndarray | None = None
    for backend in backends:
        runtime = Encoder(encoder, backend=backend, batch_size=batch_size, bulk=True)
        result, vectors = measure_ingest_throughput(client, products, runtime, index_config)
        reference = vectors if reference is None else reference
        results.append(replace(result, min_cosine=float(np.min(np.sum(vectors * reference, axis=1)))))
    return results


def cores_note() -> str:
    """Which cores this process encodes on: all of them (shared with a node on the same machine), or the set
    `taskset` left it, so that a node pinned to the others indexes beside it rather than on its cores.

    Example:
        >>> cores_note().endswith(("shares them", "cores are the node's if it was started there"))
        True
    """
    allowed, total = sorted(os.sched_getaffinity(0)), os.cpu_count() or 0
    if len(allowed) >= total:
        return f"the encoder may use all {total} CPU cores, and a node on this machine shares them"
    listed = ",".join(map(str, allowed))
    return (
        f"the encoder is pinned to CPU {listed} of {total} (`taskset -c {listed}`); the other "
        "cores are the node's if it was started there"
    )


def throughput_markdown(results: Sequence[ThroughputResult], dataset: str, encoder: str, command: str) -> str:
    """The comparison as a Markdown table, ratios to the first runtime, with the command that made it."""
    first = results[0].ingest_per_s
    lines = [
        f"# Ingest throughput by encoder runtime — {dataset}",
        "",
        f"{results[0].products} REAL {dataset} products (`Product.text_for_embedding`), encoder `{encoder}`, encode "
        f"chunks of {IngestConfig().encode_chunk}, bulk chunks of {IngestConfig().bulk_chunk}; one run, every runtime "
        f"on the same products in the same process, the node on the same machine; {cores_note()}.",
        "",
        "| runtime | batch | encode-only products/s | ingest products/s | ingest / encode-only "
        f"| ingest vs {results[0].backend} | min cosine to {results[0].backend} |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {r.backend} | {r.batch_size} | {r.encode_only_per_s:.1f} | {r.ingest_per_s:.1f} | {r.ratio:.0%} | "
            f"{r.ingest_per_s / first:.2f}x | {r.min_cosine:.6f} |"
            for r in results
        ),
        "",
        f"Run: `{command}`, 1-minute load average at the end {os.getloadavg()[0]:.1f} "
        "(the machine is shared: read the ratios, not the absolute rates).",
        "",
    ]
    return "\n".join(lines)
