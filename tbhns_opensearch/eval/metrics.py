"""Evaluate a run against graded qrels with ranx: Recall@K, NDCG@10, MRR@100 and judged@10, per query.

Relevance:
- NDCG uses the set's grades as gains (Icecat 0-3; WANDS Exact=2, Partial=1, Irrelevant=0). The default
  gain is linear (ranx ``ndcg``, Järvelin & Kekäläinen: gain = grade), the trec_eval convention, so numbers
  compare with trec_eval and Pyserini; ``gain="exponential"`` selects ranx ``ndcg_burges`` (gain = 2^grade - 1).
- Recall and MRR count a document as relevant when grade >= `threshold` (default 1, set per data set),
  which binarises the qrels for them: ranx's own relevance level (``recall@10-l2`` for threshold 2).
- The evaluated queries are those in the qrels with at least one relevant document; the others are listed
  in `Evaluation.skipped`. A query missing from the run scores 0. Queries only in the run are ignored.

Pooling bias: judged@10 is the share of each top 10 that has any judgment (grade 0 included), divided by
10 as in Pyserini. `evaluate(..., judged_only=True)` scores the condensed run (unjudged documents removed,
Sakai 2007); a system whose scores rise a lot when condensed retrieves many unjudged documents.

Example:
    >>> qrels = {"q1": {"d1": 2, "d2": 0}}
    >>> evaluate({"q1": {"d2": 2.0, "d1": 1.0}}, qrels).mean["mrr@100"]
    0.5
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import ranx

from tbhns_opensearch.errors import EvaluationError
from tbhns_opensearch.eval.runs import Qrels, Run, ranking

GAINS: dict[str, str] = {"linear": "ndcg", "exponential": "ndcg_burges"}
"""NDCG gain name -> ranx metric."""


@dataclass(frozen=True)
class MetricConfig:
    """Which metrics to compute and what counts as relevant.

    Args:
        recall_ks: Cut-offs for Recall@K.
        ndcg_k: Cut-off for NDCG.
        mrr_k: Cut-off for MRR.
        judged_k: Cut-off for judged@K.
        threshold: Lowest grade that counts as relevant for Recall, MRR and query selection.
        gain: NDCG gain, a key of `GAINS`: "linear" (gain = grade) or "exponential" (2^grade - 1).

    Example:
        >>> MetricConfig(threshold=2).names
        ('recall@10', 'recall@24', 'recall@50', 'recall@100', 'ndcg@10', 'mrr@100', 'judged@10')
    """

    recall_ks: tuple[int, ...] = (10, 24, 50, 100)
    ndcg_k: int = 10
    mrr_k: int = 100
    judged_k: int = 10
    threshold: int = 1
    gain: str = "linear"

    def __post_init__(self) -> None:
        cutoffs = (*self.recall_ks, self.ndcg_k, self.mrr_k, self.judged_k)
        if not self.recall_ks or any(not isinstance(k, int) or k < 1 for k in cutoffs):
            raise EvaluationError(
                f"Cut-offs must be positive integers, got recall_ks={self.recall_ks!r}, "
                f"ndcg_k={self.ndcg_k!r}, mrr_k={self.mrr_k!r}, judged_k={self.judged_k!r}."
            )
        if not isinstance(self.threshold, int) or self.threshold < 1:
            raise EvaluationError(f"threshold must be an integer grade >= 1, got {self.threshold!r}.")
        if self.gain not in GAINS:
            raise EvaluationError(f"Unknown NDCG gain {self.gain!r}; use one of: {', '.join(GAINS)}.")

    @property
    def recall_names(self) -> tuple[str, ...]:
        return tuple(f"recall@{k}" for k in self.recall_ks)

    @property
    def names(self) -> tuple[str, ...]:
        """Metric names in report order."""
        return (*self.recall_names, f"ndcg@{self.ndcg_k}", f"mrr@{self.mrr_k}", f"judged@{self.judged_k}")


@dataclass(frozen=True)
class Evaluation:
    """Per-query and mean scores of one run.

    Args:
        config: The settings used.
        per_query: metric -> {qid: score}, over the evaluated queries.
        mean: metric -> mean over the evaluated queries.
        skipped: qrels queries without a relevant document (not evaluated).
        judged_only: True when the run was condensed to judged documents first.
    """

    config: MetricConfig
    per_query: dict[str, dict[str, float]]
    mean: dict[str, float]
    skipped: tuple[str, ...] = ()
    judged_only: bool = False

    @property
    def queries(self) -> tuple[str, ...]:
        return tuple(next(iter(self.per_query.values())))


def condense(run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]]) -> Run:
    """Drop unjudged documents from every ranking (Sakai's condensed lists).

    Example:
        >>> condense({"q1": {"d1": 3.0, "x": 2.0}}, {"q1": {"d1": 0}})
        {'q1': {'d1': 3.0}}
    """
    return {qid: {d: s for d, s in docs.items() if d in qrels.get(qid, {})} for qid, docs in run.items()}


def judged_at_k(
    run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]], k: int = 10
) -> dict[str, float]:
    """Share of each query's top `k` with any judgment (grade 0 counts), divided by `k`, for every qrels query.

    Example:
        >>> judged_at_k({"q1": {"a": 3.0, "b": 2.0, "c": 1.0}}, {"q1": {"a": 0, "c": 1}}, k=4)
        {'q1': 0.5}
    """
    return {qid: sum(docid in judged for docid, _ in ranking(run.get(qid, {}), k)) / k for qid, judged in qrels.items()}


def evaluate(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    config: MetricConfig | None = None,
    *,
    judged_only: bool = False,
) -> Evaluation:
    """Score `run` against graded `qrels`: Recall@K, NDCG, MRR (via ranx) and judged@K, per query and mean.

    Args:
        run: qid -> {docid: score}; ranked by `runs.ranking` (score desc, docid asc).
        qrels: qid -> {docid: grade}.
        config: Cut-offs, relevance threshold and NDCG gain; defaults to `MetricConfig()`.
        judged_only: Evaluate the condensed run (unjudged documents removed) instead.

    Example:
        >>> ev = evaluate({"q1": {"a": 2.0, "b": 1.0}}, {"q1": {"b": 1}})
        >>> ev.mean["recall@10"], ev.mean["mrr@100"], ev.mean["judged@10"]
        (1.0, 0.5, 0.1)
    """
    config = config or MetricConfig()
    if judged_only:
        run = condense(run, qrels)
    queries = sorted(qid for qid, docs in qrels.items() if any(g >= config.threshold for g in docs.values()))
    if not queries:
        raise EvaluationError(
            f"No query in the qrels ({len(qrels)} queries) has a document with grade >= "
            f"{config.threshold}; check the qrels file or lower MetricConfig.threshold."
        )
    ranked = {qid: _rank_scores(run.get(qid, {})) for qid in queries}
    retrieved = [qid for qid in queries if ranked[qid]]  # ranx cannot take an empty ranking; those score 0

    # our metric name -> ranx metric name; "-lN" makes ranx count grade >= N as relevant (binary)
    level = f"-l{config.threshold}"
    names = {name: name + level for name in (*config.recall_names, f"mrr@{config.mrr_k}")}
    names[f"ndcg@{config.ndcg_k}"] = f"{GAINS[config.gain]}@{config.ndcg_k}"  # graded gains, every grade >= 1
    scores = _ranx_scores({q: dict(qrels[q]) for q in retrieved}, {q: ranked[q] for q in retrieved}, names)
    per_query = {ours: dict.fromkeys(queries, 0.0) | dict(zip(retrieved, scores[ours])) for ours in names}
    judged = judged_at_k(run, {q: qrels[q] for q in queries}, config.judged_k)
    per_query[f"judged@{config.judged_k}"] = judged

    per_query = {name: per_query[name] for name in config.names}
    mean = {name: sum(values.values()) / len(values) for name, values in per_query.items()}
    skipped = tuple(sorted(set(qrels) - set(queries)))
    return Evaluation(config=config, per_query=per_query, mean=mean, skipped=skipped, judged_only=judged_only)


def _rank_scores(docs: Mapping[str, float]) -> dict[str, float]:
    """Scores that make ranx rank exactly as `ranking` does (ranx's own tie order is unspecified)."""
    ranked = ranking(docs)
    return {docid: float(len(ranked) - i) for i, (docid, _) in enumerate(ranked)}


def _ranx_scores(qrels: Qrels, run: Run, names: Mapping[str, str]) -> dict[str, list[float]]:
    """Per-query scores in `run` order, keyed by our metric names (`names`: ours -> ranx's)."""
    if not run:
        return {ours: [] for ours in names}
    scores = ranx.evaluate(qrels, run, list(names.values()), return_mean=False)  # >1 metric: always a dict
    return {ours: [float(v) for v in scores[theirs]] for ours, theirs in names.items()}
