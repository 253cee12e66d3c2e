"""The tiny training config the checkpoint and distributed tests run: the committed toys catalog (150 products,
generated queries: 108 training pairs, 17 validation queries), 16 tokens, ndcg@10 picks the best step."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import FIXTURES


def tiny_config(folder: Path, **top: object) -> Path:
    """Write `folder/tiny.toml` with the top-level keys `top` (batch_size, max_steps, ...) before its [data]."""
    keys = {
        "max_seq_length": 16,
        "select_metric": "ndcg@10",
        "learning_rate": 1e-4,
        "warmup_ratio": 0.0,
        "patience": 0,
        "quantize": False,
        **top,
    }
    lines = [f"{key} = {json.dumps(value)}" for key, value in keys.items()]  # TOML reads these JSON scalars
    config = folder / "tiny.toml"
    config.write_text(
        "\n".join(lines)
        + f"""
[data]
catalog = "{FIXTURES / "toys_products.jsonl"}"
queries = "generated"
catalog_limit = 150
relevance_threshold = 2
max_eval_relevant = 5
max_positives_per_query = 1
"""
    )
    return config
