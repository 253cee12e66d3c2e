"""Metrics on a hand-computed example: 2 judged queries, 5 retrieved documents each."""

from __future__ import annotations

import pytest

from tbhns_opensearch.errors import EvaluationError
from tbhns_opensearch.eval.metrics import MetricConfig, condense, evaluate, judged_at_k

# q1 ranks d1..d5, q2 ranks e1..e5 (scores descending). "q4" is only in the run (ignored);
# "q3" has only a grade-0 judgment, so it has no relevant document and is skipped.
RUN = {
    "q1": {"d1": 5.0, "d2": 4.0, "d3": 3.0, "d4": 2.0, "d5": 1.0},
    "q2": {"e1": 5.0, "e2": 4.0, "e3": 3.0, "e4": 2.0, "e5": 1.0},
    "q4": {"d1": 1.0},
}
QRELS = {
    "q1": {"d1": 2, "d3": 1, "d4": 0, "d9": 3},  # d9 relevant but not retrieved
    "q2": {"e2": 0, "e3": 1, "e5": 2},
    "q3": {"z": 0},
}


def test_hand_computed_threshold_1_linear_gain():
    ev = evaluate(RUN, QRELS)
    assert ev.queries == ("q1", "q2")
    assert ev.skipped == ("q3",)
    # Recall: q1 relevant {d1, d3, d9}, retrieved d1, d3 -> 2/3; q2 relevant {e3, e5}, both retrieved -> 1.
    for k in (10, 24, 50, 100):
        assert ev.per_query[f"recall@{k}"] == pytest.approx({"q1": 2 / 3, "q2": 1.0})
        assert ev.mean[f"recall@{k}"] == pytest.approx(0.833333, abs=1e-6)  # (2/3 + 1) / 2
    # MRR: q1 first relevant at rank 1 -> 1; q2 at rank 3 (e3) -> 1/3. Mean (1 + 1/3) / 2.
    assert ev.per_query["mrr@100"] == pytest.approx({"q1": 1.0, "q2": 1 / 3})
    assert ev.mean["mrr@100"] == pytest.approx(0.666667, abs=1e-6)
    # NDCG@10, gain = grade, discount log2(rank + 1):
    # q1 DCG = 2/log2(2) + 1/log2(4) = 2.5; ideal 3, 2, 1 -> 3 + 2/log2(3) + 1/log2(4) = 4.761860 -> 0.525005
    # q2 DCG = 1/log2(4) + 2/log2(6) = 1.273706; ideal 2, 1 -> 2 + 1/log2(3) = 2.630930 -> 0.484128
    assert ev.per_query["ndcg@10"]["q1"] == pytest.approx(0.525005, abs=1e-6)
    assert ev.per_query["ndcg@10"]["q2"] == pytest.approx(0.484128, abs=1e-6)
    assert ev.mean["ndcg@10"] == pytest.approx(0.504566, abs=1e-6)
    # judged@10: q1 top 5 has d1, d3, d4 judged; q2 has e2, e3, e5 -> 3/10 each.
    assert ev.per_query["judged@10"] == pytest.approx({"q1": 0.3, "q2": 0.3})
    assert list(ev.mean) == list(MetricConfig().names)


def test_threshold_2_changes_recall_and_mrr_not_ndcg():
    ev = evaluate(RUN, QRELS, MetricConfig(threshold=2))
    # q1 relevant {d1, d9} -> recall 1/2, MRR 1; q2 relevant {e5} -> recall 1, MRR 1/5.
    assert ev.per_query["recall@10"] == pytest.approx({"q1": 0.5, "q2": 1.0})
    assert ev.per_query["mrr@100"] == pytest.approx({"q1": 1.0, "q2": 0.2})
    assert ev.mean["ndcg@10"] == pytest.approx(0.504566, abs=1e-6)  # grades are still the gains


def test_exponential_gain():
    ev = evaluate(RUN, QRELS, MetricConfig(gain="exponential"))
    # gain 2^g - 1: q1 DCG = 3 + 1/2 = 3.5; ideal 7 + 3/log2(3) + 1/2 = 9.392789 -> 0.372626
    # q2 DCG = 1/2 + 3/log2(6) = 1.660558; ideal 3 + 1/log2(3) = 3.630930 -> 0.457337
    assert ev.per_query["ndcg@10"]["q1"] == pytest.approx(0.372626, abs=1e-6)
    assert ev.per_query["ndcg@10"]["q2"] == pytest.approx(0.457337, abs=1e-6)


def test_judged_only_condenses_the_run():
    assert condense(RUN, QRELS)["q1"] == {"d1": 5.0, "d3": 3.0, "d4": 2.0}
    ev = evaluate(RUN, QRELS, judged_only=True)
    assert ev.judged_only
    # q1 condensed d1, d3, d4: DCG = 2 + 1/log2(3) = 2.630930 / 4.761860 -> 0.552500
    # q2 condensed e2, e3, e5: DCG = 1/log2(3) + 2/log2(4) = 1.630930 / 2.630930 -> 0.619906; MRR 1/2
    assert ev.per_query["ndcg@10"]["q1"] == pytest.approx(0.552500, abs=1e-6)
    assert ev.per_query["ndcg@10"]["q2"] == pytest.approx(0.619906, abs=1e-6)
    assert ev.per_query["mrr@100"]["q2"] == pytest.approx(0.5)
    assert ev.per_query["recall@10"] == pytest.approx({"q1": 2 / 3, "q2": 1.0})


def test_ties_rank_by_docid_and_missing_queries_score_zero():
    qrels = {"q1": {"b": 1}, "q2": {"x": 1}}
    ev = evaluate({"q1": {"b": 1.0, "a": 1.0}}, qrels)  # tie: a before b; q2 not retrieved
    assert ev.per_query["mrr@100"] == {"q1": 0.5, "q2": 0.0}
    assert ev.per_query["recall@10"] == {"q1": 1.0, "q2": 0.0}
    assert ev.per_query["ndcg@10"]["q2"] == 0.0


def test_recall_cutoff_counts_only_top_k():
    run = {"q1": {f"d{i:03d}": 1000.0 - i for i in range(60)}}
    qrels = {"q1": {"d005": 1, "d030": 1, "d055": 1}}
    ev = evaluate(run, qrels)
    assert [ev.mean[f"recall@{k}"] for k in (10, 24, 50, 100)] == pytest.approx([1 / 3, 1 / 3, 2 / 3, 1.0])


def test_judged_at_k_divides_by_k():
    assert judged_at_k({"q1": {"a": 2.0}}, {"q1": {"a": 0}}, k=10) == {"q1": 0.1}


def test_bad_config_and_empty_qrels_fail_clearly():
    with pytest.raises(EvaluationError, match="linear, exponential"):
        MetricConfig(gain="log")
    with pytest.raises(EvaluationError, match="threshold"):
        MetricConfig(threshold=0)
    with pytest.raises(EvaluationError, match="grade >= 1"):
        evaluate(RUN, {"q1": {"d1": 0}})
