"""Paired significance tests between two systems' per-query scores, with Holm or Bonferroni correction.

For each pair (baseline, system) on the same queries, with d = system - baseline per query:
- paired t-test (scipy ``ttest_rel``), p_t;
- randomization test (sign flips of d, two-sided, Smucker et al. 2007), p_rand = (hits + 1) / (resamples + 1);
- percentile bootstrap 95% CI of mean(d), resampling queries.
Both resampling procedures draw from ``numpy.random.default_rng(seed)``, so results repeat exactly.
`p_adjusted` and `significant` use p_rand; `adjust` corrects them across a family of comparisons.

Example:
    >>> bm25 = {"q1": 0.2, "q2": 0.4, "q3": 0.1}
    >>> knn = {"q1": 0.5, "q2": 0.6, "q3": 0.3}
    >>> round(paired_test(bm25, knn).mean_diff, 3)
    0.233
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

from tbhns_opensearch.errors import EvaluationError

_CELLS_PER_BATCH = 2_000_000  # resample rows are drawn in batches of at most this many values
_TIE = 1e-12  # differences below this are float noise (scores are in [0, 1])


@dataclass(frozen=True)
class PairedTest:
    """One comparison: `system` against `baseline` on `metric`, over `n` queries.

    Args:
        mean_diff: mean(system - baseline); positive means the system scores higher.
        ci_low, ci_high: Bootstrap confidence interval of mean_diff (level `confidence`).
        p_t: Two-sided paired t-test p-value.
        p_rand: Two-sided randomization (sign-flip) test p-value.
        p_adjusted: p_rand after correction across the family (equal to p_rand for a family of one).
        significant: p_adjusted < alpha.
        correction: "none", "holm" or "bonferroni".
    """

    metric: str
    baseline: str
    system: str
    n: int
    mean_diff: float
    ci_low: float
    ci_high: float
    p_t: float
    p_rand: float
    p_adjusted: float
    significant: bool
    alpha: float
    confidence: float
    n_resamples: int
    seed: int
    correction: str = "none"


def paired_test(
    baseline: Mapping[str, float],
    system: Mapping[str, float],
    *,
    metric: str = "",
    baseline_name: str = "baseline",
    system_name: str = "system",
    alpha: float = 0.05,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> PairedTest:
    """Compare two systems' per-query scores (qid -> score; both must hold the same queries).

    Args:
        baseline: qid -> score of the reference system (e.g. BM25).
        system: qid -> score of the system under test.
        metric, baseline_name, system_name: Labels stored in the result.
        alpha: Significance level for `significant`.
        confidence: Bootstrap confidence level.
        n_resamples: Sign-flip and bootstrap resamples.
        seed: Seed for both resampling procedures.

    Example:
        >>> r = paired_test({"a": 0.1, "b": 0.2}, {"a": 0.1, "b": 0.2})
        >>> r.mean_diff, r.p_t, r.p_rand, r.significant
        (0.0, 1.0, 1.0, False)
    """
    if set(baseline) != set(system):
        only_b, only_s = sorted(set(baseline) - set(system)), sorted(set(system) - set(baseline))
        raise EvaluationError(
            f"Paired test needs the same queries in both systems; only in {baseline_name}: "
            f"{only_b[:5]}, only in {system_name}: {only_s[:5]} (first 5 shown). "
            "Evaluate both runs against the same qrels."
        )
    if len(baseline) < 2:
        raise EvaluationError(f"Paired test needs at least 2 queries, got {len(baseline)}.")
    if not 0 < alpha < 1 or not 0 < confidence < 1 or n_resamples < 1:
        raise EvaluationError(
            f"Need 0 < alpha < 1, 0 < confidence < 1 and n_resamples >= 1; got alpha={alpha}, "
            f"confidence={confidence}, n_resamples={n_resamples}."
        )
    qids = sorted(baseline)
    diff = np.array([system[q] - baseline[q] for q in qids], dtype=np.float64)  # (n,)
    ci_low, ci_high = _bootstrap_ci(diff, confidence, n_resamples, seed)
    p_rand = _sign_flip_p(diff, n_resamples, seed)
    return PairedTest(
        metric=metric,
        baseline=baseline_name,
        system=system_name,
        n=len(qids),
        mean_diff=float(diff.mean()),
        ci_low=ci_low,
        ci_high=ci_high,
        p_t=_t_test_p(diff),
        p_rand=p_rand,
        p_adjusted=p_rand,
        significant=p_rand < alpha,
        alpha=alpha,
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values, in input order.

    Sorted ascending, p_(i) becomes max over j <= i of min(1, (m - j + 1) * p_(j)).

    Example:
        >>> holm([0.01, 0.04, 0.03])
        [0.03, 0.06, 0.06]
    """
    m = len(p_values)
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def bonferroni(p_values: Sequence[float]) -> list[float]:
    """Bonferroni adjusted p-values: min(1, m * p).

    Example:
        >>> bonferroni([0.01, 0.04, 0.5])
        [0.03, 0.12, 1.0]
    """
    return [min(1.0, len(p_values) * p) for p in p_values]


CORRECTIONS: dict[str, Callable[[Sequence[float]], list[float]]] = {"holm": holm, "bonferroni": bonferroni}


def adjust(tests: Sequence[PairedTest], method: str = "holm", alpha: float | None = None) -> list[PairedTest]:
    """Correct p_rand across `tests` as one family; return copies with p_adjusted and significant set.

    Args:
        tests: The family (e.g. every system vs BM25 on every reported metric).
        method: A key of `CORRECTIONS`: "holm" or "bonferroni".
        alpha: Significance level; None keeps each test's own.

    Example:
        >>> family = adjust([paired_test(bm25, knn), paired_test(bm25, hybrid)], "holm")  # doctest: +SKIP
    """
    if method not in CORRECTIONS:
        raise EvaluationError(f"Unknown correction {method!r}; use one of: {', '.join(CORRECTIONS)}.")
    adjusted = CORRECTIONS[method]([t.p_rand for t in tests])
    return [
        replace(
            t,
            p_adjusted=p,
            alpha=alpha if alpha is not None else t.alpha,
            significant=p < (alpha if alpha is not None else t.alpha),
            correction=method,
        )
        for t, p in zip(tests, adjusted)
    ]


def compare_to_baseline(
    per_query: Mapping[str, Mapping[str, Mapping[str, float]]],
    baseline: str,
    metrics: Sequence[str],
    *,
    method: str = "holm",
    alpha: float = 0.05,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> list[PairedTest]:
    """Test every other system against `baseline` on each metric; correct across all of them as one family.

    Args:
        per_query: system name -> metric -> {qid: score} (`Evaluation.per_query` of each system).
        baseline: Name of the reference system (must be in `per_query`).
        metrics: Metrics to test.
        method, alpha, n_resamples, seed: As in `adjust` and `paired_test`.

    Example:
        >>> compare_to_baseline({"bm25": ev_bm25.per_query, "knn": ev_knn.per_query},
        ...                     "bm25", ["ndcg@10"])  # doctest: +SKIP
    """
    if baseline not in per_query:
        raise EvaluationError(f"Baseline {baseline!r} is not among the systems: {', '.join(per_query)}.")
    tests = []
    for metric in metrics:
        for name, scores in per_query.items():
            if name == baseline:
                continue
            if metric not in scores or metric not in per_query[baseline]:
                raise EvaluationError(
                    f"Metric {metric!r} is missing for {name!r} or {baseline!r}; available: {', '.join(scores)}."
                )
            tests.append(
                paired_test(
                    per_query[baseline][metric],
                    scores[metric],
                    metric=metric,
                    baseline_name=baseline,
                    system_name=name,
                    alpha=alpha,
                    n_resamples=n_resamples,
                    seed=seed,
                )
            )
    return adjust(tests, method, alpha)


def cluster_means(per_query: Mapping[str, float], cluster_of: Callable[[str], str]) -> dict[str, float]:
    """Per-query scores averaged per cluster (e.g. per user), for a paired test clustered by user: one user's
    queries share a history and are not independent, so pairing per user keeps a user with many queries from
    counting many times.

    Args:
        per_query: qid -> score.
        cluster_of: qid -> its cluster (the user who asked it).

    Example:
        >>> cluster_means({"u1/a": 1.0, "u1/b": 0.0, "u2/a": 0.5}, lambda qid: qid.split("/")[0])
        {'u1': 0.5, 'u2': 0.5}
    """
    clusters: dict[str, list[float]] = {}
    for qid, score in per_query.items():
        clusters.setdefault(cluster_of(qid), []).append(score)
    return {cluster: float(np.mean(scores)) for cluster, scores in clusters.items()}


def _t_test_p(diff: np.ndarray) -> float:
    if np.ptp(diff) < _TIE:  # no variance: t is 0/0 (no difference: p = 1) or c/0 (constant shift: p = 0)
        return 1.0 if abs(diff.mean()) < _TIE else 0.0
    return float(stats.ttest_1samp(diff, 0.0).pvalue)  # same as ttest_rel(system, baseline)


def _sign_flip_p(diff: np.ndarray, n_resamples: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    observed = abs(diff.mean())
    hits = 0
    for rows in _batches(n_resamples, diff.size):
        signs = rng.choice((-1.0, 1.0), size=(rows, diff.size))  # (rows, n)
        hits += int(np.count_nonzero(np.abs((signs * diff).mean(axis=1)) >= observed - _TIE))
    return (hits + 1) / (n_resamples + 1)


def _bootstrap_ci(diff: np.ndarray, confidence: float, n_resamples: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = np.concatenate(
        [
            diff[rng.integers(0, diff.size, size=(rows, diff.size))].mean(axis=1)  # (rows,)
            for rows in _batches(n_resamples, diff.size)
        ]
    )
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def _batches(total: int, width: int) -> Iterator[int]:
    step = max(1, _CELLS_PER_BATCH // max(width, 1))
    for start in range(0, total, step):
        yield min(step, total - start)
