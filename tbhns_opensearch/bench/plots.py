"""PNG plots for the benchmark report, drawn on matplotlib's Agg canvas (no display, no pyplot state).

Each function takes plain data and a path, writes one PNG and returns the path.

Example:
    >>> recall_curves({"bm25": {10: 0.4, 100: 0.7}}, "recall_at_k.png")  # doctest: +SKIP
    PosixPath('recall_at_k.png')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

_DPI = 120


def recall_curves(recall: Mapping[str, Mapping[int, float]], path: str | Path) -> Path:
    """Mean Recall@K against K, one line per label (`recall`: label -> {K: mean recall})."""
    fig = _figure()
    ax = fig.add_subplot()
    for system, by_k in recall.items():
        ks = sorted(by_k)
        ax.plot(ks, [by_k[k] for k in ks], marker="o", label=system)
    all_ks = sorted({k for by_k in recall.values() for k in by_k})
    ax.set_xticks(all_ks)
    ax.set(xlabel="K", ylabel="mean Recall@K", title="Recall@K", ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return _save(fig, path)


def latency_boxes(latencies_ms: Mapping[str, Sequence[float]], path: str | Path) -> Path:
    """Per-query latency distribution (ms), one box per label (e.g. "knn\\n(knn)")."""
    fig = _figure()
    ax = fig.add_subplot()
    labels = list(latencies_ms)
    ax.boxplot([list(latencies_ms[label]) for label in labels], showfliers=True)
    ax.set_xticks(range(1, len(labels) + 1), labels)
    ax.set(ylabel="latency per query (ms)", title="Query latency")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def group_deltas(
    deltas: Mapping[str, Mapping[str, float]], path: str | Path, *, metric: str, baseline: str, key: str
) -> Path:
    """Grouped bars of mean(system) - mean(baseline) per group (`deltas`: label -> {group: delta})."""
    groups = sorted({g for by_group in deltas.values() for g in by_group})
    fig = _figure(width=max(6.4, 0.6 * len(groups) * max(1, len(deltas))))
    ax = fig.add_subplot()
    x = np.arange(len(groups))  # (groups,)
    width = 0.8 / max(1, len(deltas))
    for i, (label, by_group) in enumerate(deltas.items()):
        ax.bar(x + i * width, [by_group.get(g, 0.0) for g in groups], width, label=label)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x + width * (len(deltas) - 1) / 2, groups, rotation=30, ha="right")
    ax.set(ylabel=f"{metric} minus {baseline}", title=f"{metric} vs {baseline} by {key}")
    ax.grid(axis="y", alpha=0.3)
    if deltas:
        ax.legend()
    return _save(fig, path)


def _figure(width: float = 6.4) -> Figure:
    fig = Figure(figsize=(width, 4.2), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    fig.savefig(path, format="png")
    return path
