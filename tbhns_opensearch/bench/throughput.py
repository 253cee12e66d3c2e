"""Ingest throughput next to the encoder's encode-only throughput, on the same products and cores."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

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

    @property
    def ratio(self) -> float:
        """Ingest throughput as a share of encode-only throughput (target: >= 0.8)."""
        return self.ingest_per_s / self.encode_only_per_s


def measure_ingest_throughput(
    client: OpenSearch,
    products: Sequence[Product],
    encoder: Encoder,
    index_config: IndexConfig,
    config: IngestConfig | None = None,
) -> ThroughputResult:
    """Encode `products` once without writing, then ingest them into a fresh index behind `index_config.alias`."""
    config = config or IngestConfig(rebuild=True, progress=False)
    encoder.encode([products[0].text_for_embedding()])  # load the model outside the timings
    started = time.perf_counter()
    for begin in range(0, len(products), config.encode_chunk):
        encoder.encode([product.text_for_embedding() for product in products[begin : begin + config.encode_chunk]])
    encode_s = time.perf_counter() - started
    summary = ingest_products(client, products, encoder, index_config, config)
    return ThroughputResult(
        products=len(products),
        batch_size=encoder.batch_size,
        encode_only_per_s=len(products) / encode_s,
        ingest_per_s=summary.products_per_s,
    )
