"""The int8 gate: the quantized graph is accepted only when its retrieval metrics stay within a stated
tolerance of the fp32 graph on the run's validation queries.

Both graphs rank the same candidate catalog exactly (every judged product of the queries plus a seeded sample
of the rest, at most `max_products`) for every query: a training run's validation queries (`tbhns train`), or
a dataset's judged queries (`tbhns export --int8-gate-dataset`). The int8 graph is accepted when,
for each metric in `GATE_METRICS`, fp32 minus int8 is at most `tolerance` (absolute; `TrainConfig.int8_tolerance`). The
decision and both sets of figures go into the manifest (`INT8_GATE`), where `Encoder(backend="onnx-int8")`
reads it: a refused graph stays on disk but no command will run it.

Example:
    >>> gate = decide({"ndcg@10": 0.40, "recall@24": 0.60}, {"ndcg@10": 0.37, "recall@24": 0.60}, 0.01,
    ...               queries=900, products=5000)
    >>> gate.accepted, gate.reason
    (False, 'ndcg@10 fell by 0.0300 > 0.01 (fp32 0.4000, int8 0.3700)')
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tbhns_opensearch.catalog import Product
from tbhns_opensearch.encoder import ONNX_INT8_FILE, Encoder, OnnxBackend
from tbhns_opensearch.eval.metrics import MetricConfig
from tbhns_opensearch.eval.queries import LabelledQuery
from tbhns_opensearch.training.data import EvalSet
from tbhns_opensearch.training.retrieval import ENCODE_BATCH, ExactIndex, evaluate_ranking

GATE_METRICS = ("ndcg@10", "recall@24")
INT8_TOLERANCE = 0.01  # largest absolute drop of any gate metric that int8 may show against fp32
GATE_PRODUCTS = 5000  # candidate catalog size (judged products always included)


@dataclass(frozen=True)
class Int8Gate:
    """The measured gate: fp32 and int8 metrics on the same queries and candidates, and the verdict."""

    fp32: dict[str, float]
    int8: dict[str, float]
    tolerance: float
    queries: int
    products: int
    accepted: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    fp32: dict[str, float], int8: dict[str, float], tolerance: float, *, queries: int, products: int
) -> Int8Gate:
    """Accept int8 when no gate metric falls by more than `tolerance` against fp32."""
    drops = {metric: fp32[metric] - int8[metric] for metric in GATE_METRICS}
    worst = max(drops, key=lambda metric: drops[metric])
    accepted = drops[worst] <= tolerance
    reason = (
        f"every gate metric within {tolerance} of fp32"
        if accepted
        else f"{worst} fell by {drops[worst]:.4f} > {tolerance} (fp32 {fp32[worst]:.4f}, int8 {int8[worst]:.4f})"
    )
    rounded = {name: {m: round(v[m], 4) for m in GATE_METRICS} for name, v in (("fp32", fp32), ("int8", int8))}
    return Int8Gate(rounded["fp32"], rounded["int8"], tolerance, queries, products, accepted, reason)


def measure_int8_gate(
    directory: Path,
    split: EvalSet,
    products: Sequence[Product],
    metrics: MetricConfig,
    tolerance: float = INT8_TOLERANCE,
    max_products: int = GATE_PRODUCTS,
    seed: int = 0,
) -> Int8Gate:
    """Rank the candidates for `split`'s queries with `directory`'s fp32 and int8 graphs and `decide`."""
    judged = {pid for grades in split.qrels.values() for pid in grades}
    kept = [p for p in products if p.id in judged]
    others = [p for p in products if p.id not in judged]
    kept += random.Random(seed).sample(others, max(0, min(len(others), max_products - len(kept))))
    texts = [p.text_for_embedding() for p in kept]
    int8 = OnnxBackend(str(directory), "cpu", file=ONNX_INT8_FILE)  # ungated on purpose: this is the gate
    encoders: dict[str, Callable[[list[str]], np.ndarray]] = {
        "fp32": Encoder(str(directory), backend="onnx", batch_size=ENCODE_BATCH).encode,
        "int8": lambda batch: int8.encode(batch, ENCODE_BATCH),
    }
    means = {
        name: evaluate_ranking(
            ExactIndex(tuple(p.id for p in kept), encode(texts)), encode(list(split.queries.values())), split, metrics
        ).mean
        for name, encode in encoders.items()
    }
    return decide(means["fp32"], means["int8"], tolerance, queries=len(split.queries), products=len(kept))


def judged_split(queries: Sequence[LabelledQuery]) -> EvalSet:
    """Labelled queries (`eval.queries.load_labelled_queries`) as one evaluation set, keyed by query text.

    Example:
        >>> judged_split([LabelledQuery("kite", "p1", 2)]).qrels
        {'kite': {'p1': 2}}
    """
    qrels: dict[str, dict[str, int]] = {}
    for query in queries:
        qrels.setdefault(query.query, {})[query.product_id] = query.grade
    return EvalSet({text: text for text in qrels}, qrels, {q.query: q.source for q in queries})
