"""Write a benchmark report directory: report.json (everything), summary.md (tables) and PNG plots.

Fill one `SystemResult` per system (`SystemResult.from_run` evaluates a `RankedRun`), run the paired tests
(`significance.compare_to_baseline`), gather them in a `BenchResult` and call `write_report`. Every report
states, per system, whether its queries are real, generated or simulated.

Example:
    >>> bm25 = SystemResult.from_run(read_ranked_run("runs/bm25.trec"), qrels)  # doctest: +SKIP
    >>> knn = SystemResult.from_run(read_ranked_run("runs/knn.trec"), qrels)  # doctest: +SKIP
    >>> tests = compare_to_baseline({s.name: s.evaluation.per_query for s in (bm25, knn)},
    ...                             "bm25", ["ndcg@10", "recall@100"])  # doctest: +SKIP
    >>> write_report(BenchResult("BM25 vs kNN", "WANDS", (bm25, knn), "bm25", tuple(tests)),
    ...              "runs/bench/wands")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import platform
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from tbhns_opensearch.bench import plots
from tbhns_opensearch.bench.breakdown import GroupStat, breakdown, group_tests
from tbhns_opensearch.bench.latency import LatencyStats, latency_stats
from tbhns_opensearch.errors import BenchError
from tbhns_opensearch.eval.metrics import Evaluation, MetricConfig, evaluate
from tbhns_opensearch.eval.runs import DataSource, RankedRun
from tbhns_opensearch.eval.significance import PairedTest

REPORTED_PACKAGES: tuple[str, ...] = (
    "tbhns-opensearch",
    "numpy",
    "scipy",
    "ranx",
    "matplotlib",
    "opensearch-py",
    "torch",
    "sentence-transformers",
    "onnxruntime",
)
"""Packages whose versions every report records."""


@dataclass(frozen=True)
class SystemResult:
    """One system's evaluation and labels, as the report shows them.

    Args:
        name: System name, unique in the report (e.g. "bm25", "knn-tbhns").
        mode: Retrieval mode ("bm25", "knn", "hybrid" ...).
        source: Where its queries came from: "real", "generated" or "simulated".
        evaluation: Scores on all runs' documents.
        encoder: Encoder name; empty for lexical systems.
        judged_only: Scores on the condensed run (unjudged documents removed), or None.
        latencies_s: Per-query latencies in seconds; empty when not measured.
        warm_latencies_s: Those of the queries that paid no first encoding and no first profile read
            (`bench.passes.SystemRun.warm`); empty when not told apart.
        wall_s: Wall-clock seconds of the timed run, for QPS under concurrency; None = sequential.
        metadata: Free-form labels (index, k, fusion ...).
    """

    name: str
    mode: str
    source: DataSource
    evaluation: Evaluation
    encoder: str = ""
    judged_only: Evaluation | None = None
    latencies_s: tuple[float, ...] = ()
    wall_s: float | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    warm_latencies_s: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", DataSource.parse(self.source))
        object.__setattr__(self, "latencies_s", tuple(float(s) for s in self.latencies_s))
        object.__setattr__(self, "warm_latencies_s", tuple(float(s) for s in self.warm_latencies_s))

    @property
    def latency(self) -> LatencyStats | None:
        return latency_stats(self.latencies_s, self.wall_s) if self.latencies_s else None

    @property
    def warm_latency(self) -> LatencyStats | None:
        return latency_stats(self.warm_latencies_s) if self.warm_latencies_s else None

    @classmethod
    def from_run(
        cls,
        ranked: RankedRun,
        qrels: Mapping[str, Mapping[str, int]],
        config: MetricConfig | None = None,
        *,
        latencies_s: Sequence[float] = (),
        warm_latencies_s: Sequence[float] = (),
        wall_s: float | None = None,
    ) -> SystemResult:
        """Evaluate `ranked` (full, and judged-only when the qrels judge some documents non-relevant: with
        relevant-only qrels a condensed list holds nothing but relevant documents) and keep its labels.

        Example:
            >>> SystemResult.from_run(RankedRun("bm25", run, "bm25", "real"), qrels).evaluation.mean  # doctest: +SKIP
        """
        evaluation = evaluate(ranked.run, qrels, config)
        threshold = evaluation.config.threshold
        judges_non_relevant = any(grade < threshold for grades in qrels.values() for grade in grades.values())
        return cls(
            name=ranked.name,
            mode=ranked.mode,
            source=ranked.source,
            encoder=ranked.encoder,
            evaluation=evaluation,
            judged_only=evaluate(ranked.run, qrels, config, judged_only=True) if judges_non_relevant else None,
            latencies_s=tuple(latencies_s),
            warm_latencies_s=tuple(warm_latencies_s),
            wall_s=wall_s,
            metadata=dict(ranked.metadata),
        )


@dataclass(frozen=True)
class BenchResult:
    """Everything one report shows.

    Args:
        title: Report heading.
        dataset: Data set and query set, e.g. "WANDS (480 queries, grades Exact=2/Partial=1/Irrelevant=0)".
        systems: One result per system; the baseline among them.
        baseline: Name of the reference system (BM25).
        significance: Paired tests vs the baseline (`compare_to_baseline`), already corrected.
        breakdowns: Breakdown name -> {qid: group}, e.g. {"category": ..., "history": ...}.
        primary_metric: Metric of the p-value column, breakdown tables and delta plots.
        environment: Extra machine or cluster facts (OpenSearch version, heap, shards ...).
        queries: What the queries are where the data source alone does not say (e.g. derived from categories
            for real users); shown under every table.
        paired_by: The unit of the paired tests of `significance`: "query", or "user" (each user's queries
            averaged first, `eval.significance.cluster_means`). Breakdown tables always pair queries.
    """

    title: str
    dataset: str
    systems: tuple[SystemResult, ...]
    baseline: str = "bm25"
    significance: tuple[PairedTest, ...] = ()
    breakdowns: dict[str, dict[str, str]] = field(default_factory=dict)
    primary_metric: str = "ndcg@10"
    environment: dict[str, str] = field(default_factory=dict)
    queries: str = ""
    paired_by: str = "query"

    def __post_init__(self) -> None:
        if self.paired_by not in ("query", "user"):
            raise BenchError(f"paired_by must be 'query' or 'user', got {self.paired_by!r}")
        names = [s.name for s in self.systems]
        if not names or len(set(names)) != len(names):
            raise BenchError(f"Need at least one system with unique names, got {names}.")
        if self.baseline not in names:
            raise BenchError(f"Baseline {self.baseline!r} is not among the systems: {', '.join(names)}.")
        config = self.system(self.baseline).evaluation.config
        for system in self.systems:
            if system.evaluation.config != config:
                raise BenchError(
                    f"System {system.name!r} was evaluated with {system.evaluation.config}, the "
                    f"baseline with {config}; evaluate all systems with the same MetricConfig."
                )
            if self.primary_metric not in system.evaluation.mean:
                raise BenchError(
                    f"Primary metric {self.primary_metric!r} missing for {system.name!r}; "
                    f"available: {', '.join(system.evaluation.mean)}."
                )

    def system(self, name: str) -> SystemResult:
        return next(s for s in self.systems if s.name == name)


def machine_info() -> dict[str, Any]:
    """Platform, CPU count, Python and package versions (packages not installed read "not installed").

    Example:
        >>> machine_info()["cpu_count"] >= 1
        True
    """
    versions = {}
    for package in REPORTED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count() or 0,
        "python": platform.python_version(),
        "packages": versions,
    }


def metric_label(name: str) -> str:
    """Short column label: "recall@10" -> "R@10", "ndcg@10" -> "NDCG@10", "mrr@100" -> "MRR@100".

    Example:
        >>> metric_label("recall@24")
        'R@24'
    """
    base, _, k = name.partition("@")
    return {"recall": "R", "ndcg": "NDCG", "mrr": "MRR"}.get(base, base) + (f"@{k}" if k else "")


def write_report(result: BenchResult, directory: str | Path) -> list[Path]:
    """Write report.json, summary.md and PNG plots into `directory` (created); return the written paths.

    Plots: recall_at_k.png always; latency.png when any system has latencies; delta_<breakdown>.png per
    breakdown (primary metric, each system minus the baseline per group).
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = _write_plots(result, out)
    report_json = out / "report.json"
    group_significance = {key: _group_tests(result, groups) for key, groups in result.breakdowns.items()}
    report_json.write_text(
        json.dumps(_report_dict(result, group_significance), indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )
    summary = out / "summary.md"
    summary.write_text(_summary_markdown(result, [p.name for p in written], group_significance), encoding="utf-8")
    return [report_json, summary, *written]


# -- report.json ---------------------------------------------------------------------------------------------


GroupSignificance = dict[str, dict[str, list[PairedTest]]]
"""Breakdown name -> group -> the tests of each system vs the baseline on that group (`_group_tests`)."""


def _report_dict(result: BenchResult, group_significance: GroupSignificance) -> dict[str, Any]:
    return {
        "title": result.title,
        "dataset": result.dataset,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "baseline": result.baseline,
        "primary_metric": result.primary_metric,
        "data_sources": {s.name: s.source.value for s in result.systems},
        "queries": result.queries,
        "paired_by": result.paired_by,
        "systems": [_system_dict(s) for s in result.systems],
        "significance": [asdict(t) for t in result.significance],
        "breakdowns": {
            key: {
                s.name: {
                    m: {g: asdict(stat) for g, stat in breakdown(values, groups).items()}
                    for m, values in s.evaluation.per_query.items()
                }
                for s in result.systems
            }
            for key, groups in result.breakdowns.items()
        },
        "breakdown_significance": {
            key: {group: [asdict(t) for t in tests] for group, tests in by_group.items()}
            for key, by_group in group_significance.items()
        },
        "machine": machine_info(),
        "environment": dict(result.environment),
    }


def _system_dict(system: SystemResult) -> dict[str, Any]:
    latency = system.latency
    return {
        "name": system.name,
        "mode": system.mode,
        "encoder": system.encoder,
        "data_source": system.source.value,
        "metadata": dict(system.metadata),
        "evaluation": _evaluation_dict(system.evaluation),
        "judged_only": _evaluation_dict(system.judged_only) if system.judged_only else None,
        "latency": asdict(latency) if latency else None,
        "latencies_s": list(system.latencies_s),
        "warm_latencies_s": list(system.warm_latencies_s),
        "wall_s": system.wall_s,
    }


def _evaluation_dict(evaluation: Evaluation) -> dict[str, Any]:
    return {
        "config": asdict(evaluation.config),
        "n_queries": len(evaluation.queries),
        "skipped_queries": list(evaluation.skipped),
        "mean": evaluation.mean,
        "per_query": evaluation.per_query,
    }


# -- summary.md ----------------------------------------------------------------------------------------------


def _summary_markdown(result: BenchResult, plot_files: Sequence[str], group_significance: GroupSignificance) -> str:
    base = result.system(result.baseline).evaluation
    config = base.config
    lines = [
        f"# {result.title}",
        "",
        (
            f"Dataset: {result.dataset}. Baseline: `{result.baseline}`. {len(base.queries)} evaluated queries "
            f"({len(base.skipped)} without a relevant document skipped)."
        ),
        (
            f"Relevance: grade >= {config.threshold} counts for Recall and MRR; NDCG@{config.ndcg_k} uses "
            f"{config.gain} gains of the graded judgments."
        ),
        "",
        *_source_section(result),
        "",
        *_effectiveness_section(result),
        "",
    ]
    for section in (
        _judged_only_section(result),
        _latency_section(result),
        *_breakdown_sections(result, group_significance),
    ):
        if section:
            lines += [*section, ""]
    if plot_files:
        lines += ["## Plots", "", *(f"![{Path(f).stem}]({f})" for f in plot_files), ""]
    return "\n".join(lines)


def _source_section(result: BenchResult) -> list[str]:
    lines = ["## Data sources", "", "| system | queries |", "|---|---|"]
    lines += [f"| {s.name} | **{s.source.value}** |" for s in result.systems]
    not_real = [f"{s.name} ({s.source.value})" for s in result.systems if s.source is not DataSource.REAL]
    if not_real:
        lines += [
            "",
            (
                f"> **Not real queries:** {', '.join(not_real)}. These numbers measure the systems on "
                "generated or simulated data, not on real shoppers' queries."
            ),
        ]
    return lines + _queries_note(result)


def _queries_note(result: BenchResult) -> list[str]:
    """The line under a table that says what the queries are, when the data source alone does not."""
    return ["", f"Queries: **{result.queries}**."] if result.queries else []


def _effectiveness_section(result: BenchResult) -> list[str]:
    names = result.system(result.baseline).evaluation.config.names
    tests = {(t.system, t.metric): t for t in result.significance if t.baseline == result.baseline}
    p_header = f"p vs {result.baseline} ({metric_label(result.primary_metric)})"
    header = ["system", "mode", "encoder", "data source", *map(metric_label, names)]
    header += [p_header] if tests else []
    rows = []
    for s in result.systems:
        cells = [s.name, s.mode, s.encoder or "-", f"**{s.source.value}**"]
        cells += [f"{s.evaluation.mean[m]:.4f}{_marker(tests.get((s.name, m)))}" for m in names]
        if tests:
            test = tests.get((s.name, result.primary_metric))
            cells.append(f"{test.p_adjusted:.4f}{_marker(test)}" if test else "-")
        rows.append(cells)
    lines = ["## Effectiveness", "", *_table(header, rows), *_queries_note(result)]
    if tests:
        some = next(iter(result.significance))
        pairs = f"{some.n} users, each user's queries averaged" if result.paired_by == "user" else f"{some.n} queries"
        lines += [
            "",
            (
                f"▲/▼: significantly better/worse than `{result.baseline}` (two-sided randomization "
                f"test paired by {result.paired_by} ({pairs}), {some.n_resamples} sign flips, "
                f"{some.correction} correction over {len(tests)} comparisons, alpha = {some.alpha}). "
                "p is the corrected p-value. Bootstrap "
                f"{some.confidence:.0%} CIs of the differences are in report.json."
            ),
        ]
    return lines


def _judged_only_section(result: BenchResult) -> list[str]:
    condensed = [(s, s.judged_only) for s in result.systems if s.judged_only]
    if not condensed:
        return [
            "## Judged-only (condensed lists)",
            "",
            (
                "Not computed: the qrels judge no document non-relevant (e.g. held-out purchases), so a "
                "condensed list would hold only relevant documents."
            ),
        ]
    judged = f"judged@{condensed[0][1].config.judged_k}"
    names = [m for m in condensed[0][1].config.names if m != judged]
    rows = [[s.name, f"{s.evaluation.mean[judged]:.3f}", *(f"{ev.mean[m]:.4f}" for m in names)] for s, ev in condensed]
    return [
        "## Judged-only (condensed lists)",
        "",
        (
            "Scores with unjudged documents removed from each ranking (Sakai 2007). A system that gains much "
            f"here, or has a low {judged}, retrieves many unjudged documents: its full scores are biased down "
            "by the pooling."
        ),
        "",
        *_table(["system", judged, *map(metric_label, names)], rows),
    ]


def _latency_section(result: BenchResult) -> list[str]:
    """p50/p95/p99 and QPS per system; with a BM25 system, each p50 as a multiple of the first BM25 one's (the
    latency bar); where every system told its warm queries apart, their count and p50 (as a multiple of the
    bar's warm p50 too); the environment's `latency` entry says how the timings were taken."""
    timed = [(s, st, s.warm_latency) for s in result.systems if (st := s.latency) is not None]
    if not timed:
        return []
    bar = next(((s.name, st, hot) for s, st, hot in timed if s.mode == "bm25"), None)
    warm = all(hot is not None for _, _, hot in timed)
    header = ["system", "mode", "queries", "p50 ms", "p95 ms", "p99 ms", "QPS"] + (
        [f"p50 / {bar[0]} p50"] if bar else []
    )
    if warm:
        header += ["warm queries", "warm p50 ms"] + ([f"warm p50 / {bar[0]} warm p50"] if bar else [])
    rows = []
    for s, st, hot in timed:
        row = [s.name, s.mode, str(st.n), f"{st.p50_ms:.1f}", f"{st.p95_ms:.1f}", f"{st.p99_ms:.1f}", f"{st.qps:.1f}"]
        row += [f"{st.p50_ms / bar[1].p50_ms:.2f}x"] if bar else []
        if hot is not None and warm:
            row += [str(hot.n), f"{hot.p50_ms:.1f}"] + ([f"{hot.p50_ms / bar[2].p50_ms:.2f}x"] if bar else [])
        rows.append(row)
    how = [result.environment["latency"] + ".", ""] if "latency" in result.environment else []
    return ["## Latency", "", *how, *_table(header, rows)]


def _breakdown_sections(result: BenchResult, group_significance: GroupSignificance) -> list[list[str]]:
    metric = result.primary_metric
    sections = []
    for key, groups in result.breakdowns.items():
        stats = {s.name: breakdown(s.evaluation.per_query[metric], groups) for s in result.systems}
        tests = {(g, t.system): t for g, group in group_significance[key].items() for t in group}
        base = stats[result.baseline]
        rows = [
            [
                g,
                str(base[g].count),
                *(_group_cell(stats[s.name].get(g), tests.get((g, s.name))) for s in result.systems),
            ]
            for g in base
        ]
        header = [key, "queries", *(s.name for s in result.systems)]
        sections.append(
            [
                f"## {metric_label(metric)} by {key}",
                "",
                (
                    f"Mean per group; for each system, the difference from `{result.baseline}` on the "
                    "group's queries and its randomization-test p (paired by query), Holm-corrected over "
                    "the table."
                ),
                "",
                *_table(header, rows),
                *_queries_note(result),
                "",
                *_group_metrics_table(result, key, groups),
            ]
        )
    return sections


def _group_metrics_table(result: BenchResult, key: str, groups: Mapping[str, str]) -> list[str]:
    """Every metric (judged@k aside) per group and system: the means behind a breakdown."""
    names = [m for m in result.system(result.baseline).evaluation.config.names if not m.startswith("judged@")]
    stats = {(s.name, m): breakdown(s.evaluation.per_query[m], groups) for s in result.systems for m in names}
    rows = [
        [g, str(count.count), s.name, *(f"{stats[(s.name, m)][g].mean:.4f}" for m in names)]
        for g, count in stats[(result.baseline, names[0])].items()
        for s in result.systems
    ]
    return [f"All metrics by {key}:", "", *_table([key, "queries", "system", *map(metric_label, names)], rows)]


def _group_tests(result: BenchResult, groups: Mapping[str, str]) -> dict[str, list[PairedTest]]:
    metric = result.primary_metric
    return group_tests(
        {s.name: s.evaluation.per_query[metric] for s in result.systems}, result.baseline, groups, metric
    )


def _group_cell(stat: GroupStat | None, test: PairedTest | None) -> str:
    if stat is None:
        return "-"
    if test is None:
        return f"{stat.mean:.4f}"
    return f"{stat.mean:.4f} ({test.mean_diff:+.4f}, p {test.p_adjusted:.3f}){_marker(test)}"


def _marker(test: PairedTest | None) -> str:
    if not test or not test.significant:
        return ""
    return " ▲" if test.mean_diff > 0 else " ▼"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


# -- plots ---------------------------------------------------------------------------------------------------


def _write_plots(result: BenchResult, out: Path) -> list[Path]:
    recall = {
        _label(s): {k: s.evaluation.mean[f"recall@{k}"] for k in s.evaluation.config.recall_ks} for s in result.systems
    }
    written = [plots.recall_curves(recall, out / "recall_at_k.png")]
    timed = {
        f"{s.name}\n({s.mode}, {s.source.value})": [x * 1000 for x in s.latencies_s]
        for s in result.systems
        if s.latencies_s
    }
    if timed:
        written.append(plots.latency_boxes(timed, out / "latency.png"))
    metric = result.primary_metric
    for key, groups in result.breakdowns.items():
        base = breakdown(result.system(result.baseline).evaluation.per_query[metric], groups)
        deltas = {
            _label(s): {
                g: stat.mean - base[g].mean
                for g, stat in breakdown(s.evaluation.per_query[metric], groups).items()
                if g in base
            }
            for s in result.systems
            if s.name != result.baseline
        }
        written.append(
            plots.group_deltas(
                deltas, out / f"delta_{_slug(key)}.png", metric=metric_label(metric), baseline=result.baseline, key=key
            )
        )
    return written


def _label(system: SystemResult) -> str:
    """Plot label that carries the data source, e.g. "knn-tbhns [generated]"."""
    return f"{system.name} [{system.source.value}]"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "group"
