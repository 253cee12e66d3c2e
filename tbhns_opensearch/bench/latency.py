"""Latency percentiles and throughput from per-query timings.

Example:
    >>> stats = latency_stats([0.010, 0.020, 0.030, 0.040])
    >>> round(stats.p50_ms, 1), round(stats.qps, 1)
    (25.0, 40.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tbhns_opensearch.errors import BenchError


@dataclass(frozen=True)
class LatencyStats:
    """Summary of per-query latencies (milliseconds) and throughput (queries per second)."""

    n: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    qps: float


def latency_stats(seconds: Sequence[float], wall_s: float | None = None) -> LatencyStats:
    """Percentiles (numpy linear interpolation) and QPS of per-query latencies given in seconds.

    Args:
        seconds: One latency per query, in seconds.
        wall_s: Wall-clock time of the whole run; QPS = n / wall_s. None assumes queries ran one after
            another: QPS = n / sum(seconds). Pass it for concurrent clients.

    Example:
        >>> latency_stats([0.1, 0.1], wall_s=0.1).qps
        20.0
    """
    values = np.asarray(seconds, dtype=np.float64)  # (n,)
    if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise BenchError(
            f"Latencies must be a non-empty list of finite seconds >= 0, got {len(values)} values "
            f"(first: {values.ravel()[:3].tolist()})."
        )
    total = values.sum() if wall_s is None else wall_s
    if total <= 0:
        raise BenchError(f"Total time must be > 0 to compute QPS, got {total} s.")
    p50, p95, p99 = np.percentile(values, [50, 95, 99]) * 1000
    return LatencyStats(
        n=int(values.size),
        mean_ms=float(values.mean() * 1000),
        p50_ms=float(p50),
        p95_ms=float(p95),
        p99_ms=float(p99),
        max_ms=float(values.max() * 1000),
        qps=float(values.size / total),
    )
