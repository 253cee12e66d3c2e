"""Report directory: report.json, summary.md with data-source labels, readable PNGs; breakdown and latency."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pytest
from matplotlib import image

from tbhns_opensearch.bench.breakdown import GroupStat, breakdown, group_tests, history_bucket
from tbhns_opensearch.bench.latency import latency_stats
from tbhns_opensearch.bench.report import BenchResult, SystemResult, metric_label, write_report
from tbhns_opensearch.errors import BenchError
from tbhns_opensearch.eval.metrics import MetricConfig
from tbhns_opensearch.eval.runs import RankedRun
from tbhns_opensearch.eval.significance import compare_to_baseline

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _bench() -> BenchResult:
    rng = np.random.default_rng(0)
    queries = [f"q{i:02d}" for i in range(12)]
    docs = [f"d{j:02d}" for j in range(30)]
    qrels = {q: {d: int(rng.integers(0, 3)) for d in rng.choice(docs, 6, replace=False)} for q in queries}
    for q in queries:
        qrels[q]["d00"] = 2  # every query has a relevant document
    bm25 = {q: {d: float(rng.uniform()) for d in docs} for q in queries}
    knn = {q: {d: s + (1.0 if qrels[q].get(d, 0) > 0 else 0.0) for d, s in bm25[q].items()} for q in queries}
    systems = (
        SystemResult.from_run(
            RankedRun("bm25", bm25, mode="bm25", source="real"),
            qrels,
            latencies_s=rng.uniform(0.002, 0.01, 12).tolist(),
        ),
        SystemResult.from_run(
            RankedRun("knn-tbhns", knn, mode="knn", source="generated", encoder="minilm"),
            qrels,
            latencies_s=rng.uniform(0.005, 0.02, 12).tolist(),
        ),
    )
    tests = compare_to_baseline(
        {s.name: s.evaluation.per_query for s in systems}, "bm25", ["ndcg@10", "recall@10"], n_resamples=500
    )
    category = {q: ("Chairs" if i % 2 else "Tables") for i, q in enumerate(queries)}
    history = {q: history_bucket(i) for i, q in enumerate(queries)}
    return BenchResult(
        "BM25 vs kNN",
        "toy set",
        systems,
        "bm25",
        tuple(tests),
        breakdowns={"category": category, "history": history},
        environment={"opensearch": "2.19"},
    )


def test_report_directory_holds_json_markdown_and_readable_pngs(tmp_path):
    written = write_report(_bench(), tmp_path / "report")
    names = sorted(p.name for p in written)
    assert names == [
        "delta_category.png",
        "delta_history.png",
        "latency.png",
        "recall_at_k.png",
        "report.json",
        "summary.md",
    ]
    for path in written:
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == PNG_SIGNATURE
            pixels = image.imread(path)  # (height, width, channels)
            assert pixels.shape[0] > 100 and pixels.shape[1] > 100


def test_report_json_has_everything(tmp_path):
    write_report(_bench(), tmp_path)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["data_sources"] == {"bm25": "real", "knn-tbhns": "generated"}
    knn = report["systems"][1]
    assert knn["data_source"] == "generated" and knn["encoder"] == "minilm"
    assert set(knn["evaluation"]["mean"]) == {
        "recall@10",
        "recall@24",
        "recall@50",
        "recall@100",
        "ndcg@10",
        "mrr@100",
        "judged@10",
    }
    assert len(knn["evaluation"]["per_query"]["ndcg@10"]) == 12
    assert knn["judged_only"]["mean"]["ndcg@10"] >= 0
    assert set(knn["latency"]) >= {"p50_ms", "p95_ms", "p99_ms", "qps"}
    assert {t["metric"] for t in report["significance"]} == {"ndcg@10", "recall@10"}
    assert report["breakdowns"]["history"]["bm25"]["ndcg@10"]["5+"]["count"] == 7
    assert report["machine"]["cpu_count"] >= 1 and "ranx" in report["machine"]["packages"]
    assert report["environment"] == {"opensearch": "2.19"}


def test_summary_states_data_sources_and_tables(tmp_path):
    write_report(_bench(), tmp_path)
    summary = (tmp_path / "summary.md").read_text()
    assert "## Data sources" in summary
    assert "| bm25 | **real** |" in summary and "| knn-tbhns | **generated** |" in summary
    assert "Not real queries:** knn-tbhns (generated)" in summary
    header = (
        "| system | mode | encoder | data source | R@10 | R@24 | R@50 | R@100 | NDCG@10 | MRR@100 | "
        "judged@10 | p vs bm25 (NDCG@10) |"
    )
    assert header in summary
    assert "▲" in summary  # knn is built to beat bm25
    assert "| system | mode | queries | p50 ms | p95 ms | p99 ms | QPS | p50 / bm25 p50 |" in summary
    assert re.search(r"\| bm25 \| bm25 \| 12 \|[^\n]*\| 1\.00x \|", summary)
    assert "## NDCG@10 by category" in summary and "## NDCG@10 by history" in summary
    assert "## Judged-only (condensed lists)" in summary
    assert "![recall_at_k](recall_at_k.png)" in summary


def test_report_without_latency_or_breakdowns_has_only_recall_plot(tmp_path):
    bench = _bench()
    plain = BenchResult("t", "d", tuple(SystemResult(s.name, s.mode, s.source, s.evaluation) for s in bench.systems))
    names = sorted(p.name for p in write_report(plain, tmp_path))
    assert names == ["recall_at_k.png", "report.json", "summary.md"]
    assert "Latency" not in (tmp_path / "summary.md").read_text()


def test_bench_result_rejects_unknown_baseline():
    bench = _bench()
    with pytest.raises(BenchError, match="Baseline 'lexical'"):
        BenchResult("t", "d", bench.systems, baseline="lexical")


def test_bench_result_rejects_mixed_metric_configs():
    bench = _bench()
    other = SystemResult.from_run(
        RankedRun("x", {"q00": {"d00": 1.0}}, mode="knn", source="real"), {"q00": {"d00": 2}}, MetricConfig(threshold=2)
    )
    with pytest.raises(BenchError, match="same MetricConfig"):
        BenchResult("t", "d", (*bench.systems, other))


def test_breakdown_mean_and_count():
    scores = {"q1": 1.0, "q2": 0.0, "q3": 0.5, "q4": 0.25}
    groups = {"q1": "5+", "q2": "5+", "q3": "0"}  # q4 has no group: left out
    assert breakdown(scores, groups) == {"0": GroupStat(0.5, 1), "5+": GroupStat(0.5, 2)}
    assert [history_bucket(n) for n in (0, 1, 4, 5)] == ["0", "1-4", "1-4", "5+"]
    with pytest.raises(BenchError, match="same query ids"):
        breakdown(scores, {"x": "a"})


def test_group_tests_find_the_group_where_the_systems_differ():
    queries = [f"q{i:02d}" for i in range(40)]
    groups = {q: ("cold" if i < 20 else "warm") for i, q in enumerate(queries)}
    plain = {q: 0.3 + 0.01 * (i % 7) for i, q in enumerate(queries)}
    personal = {q: plain[q] + (0.2 if groups[q] == "warm" else 0.0) for q in queries}
    tests = group_tests({"plain": plain, "personal": personal}, "plain", groups, "recall@24")
    (cold,), (warm,) = tests["cold"], tests["warm"]
    assert (cold.n, cold.mean_diff, cold.significant) == (20, 0.0, False)
    assert warm.n == 20 and warm.mean_diff == pytest.approx(0.2) and warm.significant
    assert warm.correction == "holm" and warm.p_adjusted >= warm.p_rand


def test_report_breakdown_tables_show_differences_and_p(tmp_path):
    write_report(_bench(), tmp_path)
    summary = (tmp_path / "summary.md").read_text()
    assert "Holm-corrected over the table" in summary and ", p " in summary
    assert "All metrics by category:" in summary and "| category | queries | system | R@10 |" in summary
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["breakdown_significance"]["category"]["Chairs"][0]["system"] == "knn-tbhns"


def test_latency_stats():
    stats = latency_stats([0.01 * i for i in range(1, 101)])  # 10 ms .. 1000 ms
    assert stats.n == 100
    assert stats.p50_ms == pytest.approx(505.0)  # numpy linear interpolation between 500 and 510
    assert stats.p95_ms == pytest.approx(950.5)
    assert stats.p99_ms == pytest.approx(990.1)
    assert stats.qps == pytest.approx(100 / 50.5)  # sequential: n / sum(seconds)
    assert latency_stats([0.1] * 10, wall_s=0.5).qps == pytest.approx(20.0)
    with pytest.raises(BenchError, match="non-empty"):
        latency_stats([])


def test_metric_labels():
    assert [metric_label(m) for m in ("recall@10", "ndcg@10", "mrr@100", "judged@10")] == [
        "R@10",
        "NDCG@10",
        "MRR@100",
        "judged@10",
    ]


def test_relevant_only_qrels_get_no_judged_only_view(tmp_path):
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}  # held-out purchases: nothing judged non-relevant
    run = {"q1": {"d1": 2.0, "d9": 1.0}, "q2": {"d9": 2.0, "d2": 1.0}}
    system = SystemResult.from_run(RankedRun("semantic", run, mode="semantic", source="real"), qrels)
    assert system.judged_only is None
    write_report(BenchResult("users", "toy", (system,), "semantic"), tmp_path)
    assert "Not computed: the qrels judge no document non-relevant" in (tmp_path / "summary.md").read_text()


def test_the_latency_section_says_how_the_timings_were_taken_and_has_no_bar_without_bm25(tmp_path):
    bench = _bench()
    semantic = tuple(s for s in bench.systems if s.mode != "bm25")
    told = replace(bench, systems=semantic, baseline=semantic[0].name, environment={"latency": "one thread"})
    told = replace(told, significance=())
    write_report(told, tmp_path)
    summary = (tmp_path / "summary.md").read_text()
    assert "## Latency\n\none thread.\n\n| system | mode | queries | p50 ms | p95 ms | p99 ms | QPS |\n" in summary


def test_the_latency_section_gives_the_warm_queries_p50_beside_all_queries(tmp_path):
    """With each system's warm queries told apart: their count and p50, and that p50 over BM25's warm p50."""
    bench = _bench()
    warm = (
        replace(bench.systems[0], latencies_s=(0.004, 0.002, 0.003), warm_latencies_s=(0.002, 0.003)),
        replace(bench.systems[1], latencies_s=(0.020, 0.004, 0.005), warm_latencies_s=(0.004,)),
    )
    write_report(replace(bench, systems=warm), tmp_path)
    summary = (tmp_path / "summary.md").read_text()
    assert "| p50 / bm25 p50 | warm queries | warm p50 ms | warm p50 / bm25 warm p50 |" in summary
    assert "| bm25 | bm25 | 3 | 3.0 |" in summary and "| 1.00x | 2 | 2.5 | 1.00x |" in summary
    assert "| knn-tbhns | knn | 3 | 5.0 |" in summary and "| 1.67x | 1 | 4.0 | 1.60x |" in summary
    report = json.loads((tmp_path / "report.json").read_text())
    assert [s["warm_latencies_s"] for s in report["systems"]] == [[0.002, 0.003], [0.004]]
    write_report(bench, tmp_path)  # not told apart: no warm columns
    assert "warm p50" not in (tmp_path / "summary.md").read_text()
