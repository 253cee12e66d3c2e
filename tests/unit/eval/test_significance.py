"""Paired tests: no difference against itself, a planted difference is found, Holm checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from tbhns_opensearch.errors import EvaluationError
from tbhns_opensearch.eval.significance import adjust, bonferroni, cluster_means, compare_to_baseline, holm, paired_test


def _scores(values):
    return {f"q{i:02d}": float(v) for i, v in enumerate(values)}


def test_run_against_itself_shows_no_difference():
    base = _scores(np.random.default_rng(1).uniform(size=30))
    result = paired_test(base, dict(base), n_resamples=500)
    assert result.mean_diff == 0.0
    assert (result.ci_low, result.ci_high) == (0.0, 0.0)
    assert result.p_t == 1.0 and result.p_rand == 1.0
    assert not result.significant


def test_planted_difference_is_significant_and_seeded():
    rng = np.random.default_rng(7)
    base_values = rng.uniform(0.0, 0.6, size=50)
    base = _scores(base_values)
    better = _scores(base_values + 0.3 + rng.normal(0.0, 0.05, size=50))
    result = paired_test(base, better, n_resamples=2000, seed=3)
    assert result.mean_diff == pytest.approx(0.3, abs=0.03)
    assert result.ci_low < result.mean_diff < result.ci_high
    assert 0.25 < result.ci_low and result.ci_high < 0.35
    assert result.p_t < 1e-6
    assert result.p_rand == pytest.approx(1 / 2001)  # no sign flip reaches the observed mean
    assert result.significant
    assert paired_test(base, better, n_resamples=2000, seed=3) == result


def test_small_noisy_difference_is_not_significant():
    rng = np.random.default_rng(11)
    base = _scores(rng.uniform(size=20))
    other = {q: v + rng.normal(0.0, 0.2) for q, v in base.items()}
    other = {q: v - (sum(other.values()) - sum(base.values())) / 20 for q, v in other.items()}  # mean diff 0
    result = paired_test(base, other, n_resamples=1000)
    assert result.mean_diff == pytest.approx(0.0, abs=1e-12)
    assert result.p_rand > 0.5 and result.p_t > 0.5 and not result.significant


def test_holm_and_bonferroni_by_hand():
    # sorted: 0.01 (x3 = 0.03), 0.02 (x2 = 0.04), 0.04 (x1 = 0.04, running max 0.04)
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    # monotonicity: 0.01 x3 = 0.03; 0.03 x2 = 0.06; 0.04 x1 = 0.04 -> raised to 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert bonferroni([0.04, 0.01, 0.5]) == pytest.approx([0.12, 0.03, 1.0])


def test_adjust_sets_family_p_values():
    a = _scores([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    b = {q: v + 0.2 for q, v in a.items()}
    tests = adjust([paired_test(a, b, n_resamples=200), paired_test(a, dict(a), n_resamples=200)], "bonferroni")
    assert [t.correction for t in tests] == ["bonferroni", "bonferroni"]
    assert tests[0].p_adjusted == pytest.approx(min(1.0, 2 * tests[0].p_rand))
    assert tests[1].p_adjusted == 1.0
    with pytest.raises(EvaluationError, match="holm, bonferroni"):
        adjust(tests, "fdr")


def test_compare_to_baseline_builds_one_family():
    base = _scores(np.linspace(0.1, 0.5, 25))
    per_query = {
        "bm25": {"ndcg@10": base, "recall@10": base},
        "knn": {"ndcg@10": {q: v + 0.3 for q, v in base.items()}, "recall@10": base},
    }
    tests = compare_to_baseline(per_query, "bm25", ["ndcg@10", "recall@10"], n_resamples=500)
    assert [(t.system, t.metric, t.significant) for t in tests] == [
        ("knn", "ndcg@10", True),
        ("knn", "recall@10", False),
    ]
    assert all(t.correction == "holm" for t in tests)


def test_unpaired_queries_are_rejected():
    with pytest.raises(EvaluationError, match="same queries"):
        paired_test({"q1": 0.1, "q2": 0.2}, {"q1": 0.1, "q3": 0.2})


def test_cluster_means_pairs_by_user_so_a_heavy_user_counts_once() -> None:
    """Ten queries of one user and one of another: per user, the heavy user is one pair, not ten."""
    baseline = {f"heavy/{i}": 0.0 for i in range(10)} | {"light/0": 0.5}
    system = {f"heavy/{i}": 0.1 for i in range(10)} | {"light/0": 0.0}
    user = lambda qid: qid.split("/")[0]  # noqa: E731
    per_user = paired_test(cluster_means(baseline, user), cluster_means(system, user))
    per_query = paired_test(baseline, system)
    assert per_user.n == 2 and per_query.n == 11
    assert per_user.mean_diff == pytest.approx((0.1 - 0.5) / 2)
    assert per_query.mean_diff == pytest.approx((1.0 - 0.5) / 11)
