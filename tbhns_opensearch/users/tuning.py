"""Choosing alpha: Recall@K of personalized exact search on validation users, over a grid of alphas."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from tbhns_opensearch.errors import PersonalizationError
from tbhns_opensearch.users.blend import personalize
from tbhns_opensearch.users.profiles import PersonalizationConfig, UserProfile

ALPHA_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


@dataclass(frozen=True, eq=False)
class PersonalizationCase:
    """One evaluation query: a user's query vector, their profile and the held-out products it should find."""

    user_id: str
    query_vector: np.ndarray  # (dim,)
    profile: UserProfile | None
    targets: frozenset[str]


@dataclass(frozen=True)
class AlphaTuning:
    """Grid search result: the best alpha and the mean Recall@K of each alpha tried."""

    best_alpha: float
    recall: dict[float, float]
    k: int


def recall_at_k(
    cases: Sequence[PersonalizationCase],
    product_ids: Sequence[str],
    product_matrix: np.ndarray,
    config: PersonalizationConfig,
    k: int = 24,
) -> np.ndarray:
    """Per-case Recall@k of exact cosine search with the personalized (or fallback) query vectors.

    Args:
        cases: Evaluation queries.
        product_ids: Row ids of `product_matrix`.
        product_matrix: Unit product vectors, shape (n_products, dim).
        config: `alpha` and `min_history` applied to every case.
        k: Cut-off.

    Example:
        >>> m = np.eye(3)
        >>> case = PersonalizationCase("u", np.array([1.0, 0.0, 0.0]), None, frozenset({"b"}))
        >>> recall_at_k([case], ["a", "b", "c"], m, PersonalizationConfig(), k=1).tolist()
        [0.0]
    """
    if len(product_ids) != len(product_matrix):
        raise PersonalizationError(f"{len(product_ids)} product ids for {len(product_matrix)} product vectors")
    queries = np.stack(
        [personalize(case.query_vector, case.user_id, case.profile, config).vector for case in cases]
    ).astype(np.float32)  # (n_cases, dim)
    recalls = np.zeros(len(cases))
    k = min(k, len(product_ids))
    for start in range(0, len(cases), 1024):
        scores = queries[start : start + 1024] @ product_matrix.T  # (chunk, n_products)
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # (chunk, k)
        for row, indices in enumerate(top):
            case = cases[start + row]
            found = sum(product_ids[index] in case.targets for index in indices)
            recalls[start + row] = found / len(case.targets)
    return recalls


def tune_alpha(
    cases: Sequence[PersonalizationCase],
    product_ids: Sequence[str],
    product_matrix: np.ndarray,
    config: PersonalizationConfig,
    grid: Sequence[float] = ALPHA_GRID,
    k: int = 24,
) -> AlphaTuning:
    """Pick the alpha of `grid` with the highest mean Recall@k on validation `cases` (ties: the smaller alpha).

    Example:
        >>> tune_alpha(cases, ids, matrix, PersonalizationConfig()).best_alpha  # doctest: +SKIP
        0.3
    """
    if not cases:
        raise PersonalizationError("tune_alpha needs at least one validation case")
    recall = {
        float(alpha): float(recall_at_k(cases, product_ids, product_matrix, replace(config, alpha=alpha), k).mean())
        for alpha in grid
    }
    best = max(sorted(recall), key=lambda alpha: recall[alpha])
    return AlphaTuning(best_alpha=best, recall=recall, k=k)
