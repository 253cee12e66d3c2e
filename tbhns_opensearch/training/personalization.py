"""Personalization: user vectors from histories, blended with the query vector, with an explicit fallback.

A user's history is a list of events (`user_id, product_id, event, timestamp`); each event type has a weight
(purchase > add_to_cart > click by default). The user vector is the recency- and event-weighted mean of the
vectors of the products in the history, normalized:

    w_i = event_weight[event_i] * 0.5 ** ((t_last - t_i) / half_life)      u = normalize(sum_i w_i v_i)

where `t_last` is the user's latest event. The personalized query vector is
`normalize((1 - alpha) * q + alpha * u)`. A user with fewer than `min_history` events (or no user, or an
unknown one) gets `alpha = 0`: exactly the plain query vector, and the result says `fallback=True` and why.
`alpha` is tuned on validation users with `tune_alpha` (a grid search of Recall@K on held-out purchases).

Example:
    >>> config = PersonalizationConfig(min_history=2, alpha=0.5)
    >>> events = [UserEvent("u1", "p1", "purchase", 1.0), UserEvent("u1", "p2", "click", 2.0)]
    >>> vectors = {"p1": np.array([1.0, 0.0]), "p2": np.array([0.0, 1.0])}
    >>> profile = build_user_profiles(events, vectors, config)["u1"]
    >>> result = personalize(np.array([0.0, 1.0]), "u1", profile, config)
    >>> result.fallback, result.alpha
    (False, 0.5)
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np

from tbhns_opensearch.errors import TrainingError

DEFAULT_EVENT_WEIGHTS: Mapping[str, float] = {"purchase": 1.0, "add_to_cart": 0.5, "click": 0.2}
USER_SOURCES = ("real", "simulated")
HISTORY_COLUMNS = ("user_id", "product_id", "event", "timestamp")
ALPHA_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


@dataclass(frozen=True)
class PersonalizationConfig:
    """How histories become user vectors and how much they move the query.

    Args:
        event_weights: Weight of each event type in the user vector (a mapping; stored as sorted pairs).
        half_life: Recency half-life in the units of the timestamps (seconds for dates; order numbers for
            Instacart); an event this much older than the user's latest counts half. None: no decay.
        min_history: Users with fewer events get the plain query (alpha = 0, fallback).
        alpha: Weight of the user vector in normalize((1 - alpha) q + alpha u), in [0, 1].

    Example:
        >>> PersonalizationConfig(event_weights={"purchase": 1.0}).weights
        {'purchase': 1.0}
    """

    event_weights: Mapping[str, float] | tuple[tuple[str, float], ...] = field(
        default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS)
    )
    half_life: float | None = 30 * 86400.0
    min_history: int = 3
    alpha: float = 0.3

    def __post_init__(self) -> None:
        pairs = self.event_weights.items() if isinstance(self.event_weights, Mapping) else self.event_weights
        weights = tuple(sorted((str(name), float(weight)) for name, weight in pairs))
        if not weights or any(weight <= 0 or not math.isfinite(weight) for _, weight in weights):
            raise TrainingError(f"event_weights must give each event type a positive weight, got {dict(weights)}")
        object.__setattr__(self, "event_weights", weights)
        if self.half_life is not None and not self.half_life > 0:
            raise TrainingError(f"half_life must be positive (or None for no decay), got {self.half_life!r}")
        if isinstance(self.min_history, bool) or not isinstance(self.min_history, int) or self.min_history < 1:
            raise TrainingError(f"min_history must be an integer >= 1, got {self.min_history!r}")
        _check_alpha(self.alpha)

    @property
    def weights(self) -> dict[str, float]:
        return dict(self.event_weights)  # type: ignore[arg-type]


@dataclass(frozen=True)
class UserEvent:
    """One interaction of a user with a product.

    Args:
        user_id: The user.
        product_id: The product (its id in the catalog and the product index).
        event: Event type, a key of `PersonalizationConfig.event_weights` (purchase, add_to_cart, click).
        timestamp: When, as a number (epoch seconds, or an order number as a time proxy).
        source: "real" (a dataset) or "simulated" (`user_sources.simulate_users`); never mixed in a report.
    """

    user_id: str
    product_id: str
    event: str
    timestamp: float
    source: str = "real"

    def __post_init__(self) -> None:
        if self.source not in USER_SOURCES:
            raise TrainingError(f"event source {self.source!r} is unknown; use one of {', '.join(USER_SOURCES)}")
        if not self.user_id or not self.product_id:
            raise TrainingError(f"event {self!r} needs a user_id and a product_id")


@dataclass(frozen=True, eq=False)
class UserProfile:
    """A user's vector and what it was built from.

    Args:
        user_id: The user.
        vector: Unit-length user vector, shape (dim,).
        event_count: Events that went into the vector (those whose product has a vector).
        last_event: Timestamp of the latest of them.
        source: "real" or "simulated".
    """

    user_id: str
    vector: np.ndarray  # (dim,)
    event_count: int
    last_event: float
    source: str


@dataclass(frozen=True, eq=False)
class PersonalizedVector:
    """The vector a personalized search uses, and whether it fell back to the plain query.

    Args:
        vector: Unit-length vector, shape (dim,); the query vector itself when `fallback` is True.
        alpha: The user weight applied (0.0 on fallback).
        fallback: True when the plain query vector is returned (no user, unknown user, short history).
        reason: Why it fell back, for the response; None when personalized.
    """

    vector: np.ndarray  # (dim,)
    alpha: float
    fallback: bool
    reason: str | None = None


def read_history(path: str | Path) -> list[UserEvent]:
    """Read user events from CSV or JSONL with columns user_id, product_id, event, timestamp (+ optional source).

    Timestamps are numbers (epoch seconds, order numbers) or ISO 8601 dates.

    Example:
        >>> read_history("history.csv")[0]  # doctest: +SKIP
        UserEvent(user_id='u1', product_id='p9', event='purchase', timestamp=1700000000.0, source='real')
    """
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"history file {str(path)!r} does not exist; pass a CSV or JSONL of user events")
    if path.suffix.lower() == ".jsonl":
        records = _jsonl_records(path)
    elif path.suffix.lower() == ".csv":
        records = _csv_records(path)
    else:
        raise TrainingError(f"history file {path.name!r} must end in .csv or .jsonl")
    return [_event(record, path, line) for line, record in records]


def build_user_profiles(
    events: Iterable[UserEvent], product_vectors: Mapping[str, np.ndarray], config: PersonalizationConfig
) -> dict[str, UserProfile]:
    """One profile per user with at least one event whose product has a vector; others are left out.

    Args:
        events: Any order; events of unknown event types raise a TrainingError.
        product_vectors: Product id -> unit vector (dim,). Events of products without one are skipped.
        config: Event weights and half-life.

    Example:
        >>> vectors = {"p1": np.array([3.0, 4.0]) / 5}
        >>> build_user_profiles([UserEvent("u", "p1", "click", 0.0)], vectors, PersonalizationConfig())["u"].vector
        array([0.6, 0.8])
    """
    weights = config.weights
    by_user: dict[str, list[UserEvent]] = defaultdict(list)
    for event in events:
        if event.event not in weights:
            raise TrainingError(
                f"event type {event.event!r} of user {event.user_id!r} has no weight; valid types are "
                f"{sorted(weights)} (set PersonalizationConfig.event_weights to add it)"
            )
        if event.product_id in product_vectors:
            by_user[event.user_id].append(event)
    profiles = {}
    for user_id, history in by_user.items():
        sources = {event.source for event in history}
        if len(sources) > 1:
            raise TrainingError(f"user {user_id!r} mixes real and simulated events; give simulated users own ids")
        last = max(event.timestamp for event in history)
        matrix = np.stack([np.asarray(product_vectors[event.product_id], dtype=np.float64) for event in history])
        event_weights = np.array([weights[event.event] * _decay(last - event.timestamp, config.half_life)
                                  for event in history])  # (n,)
        profiles[user_id] = UserProfile(
            user_id=user_id,
            vector=_normalize(event_weights @ matrix),  # (dim,)
            event_count=len(history),
            last_event=last,
            source=sources.pop(),
        )
    return profiles


def blend(query_vector: np.ndarray, user_vector: np.ndarray, alpha: float) -> np.ndarray:
    """normalize((1 - alpha) * q + alpha * u), with the dtype of `query_vector`.

    Example:
        >>> blend(np.array([1.0, 0.0]), np.array([0.0, 1.0]), 0.5).round(4)
        array([0.7071, 0.7071])
    """
    _check_alpha(alpha)
    query = np.asarray(query_vector)
    user = np.asarray(user_vector, dtype=query.dtype)
    if query.shape != user.shape:
        raise TrainingError(f"query vector {query.shape} and user vector {user.shape} differ in shape; "
                            "build user vectors with the encoder the product index was built with")
    mixed = (1.0 - alpha) * query + alpha * user  # (dim,)
    norm = np.linalg.norm(mixed)
    return (mixed / norm).astype(query.dtype) if norm > 0 else query


def personalize(
    query_vector: np.ndarray, user_id: str | None, profile: UserProfile | None, config: PersonalizationConfig
) -> PersonalizedVector:
    """The blended vector, or the plain `query_vector` itself (fallback) with the reason.

    Args:
        query_vector: Unit query vector (dim,).
        user_id: The requested user, or None.
        profile: That user's stored profile, or None when there is none.
        config: `alpha` and `min_history`.

    Example:
        >>> q = np.array([1.0, 0.0])
        >>> personalize(q, "u9", None, PersonalizationConfig()).reason
        "unknown user 'u9': no stored history"
    """
    if user_id is None:
        return PersonalizedVector(query_vector, 0.0, True, "no user_id given")
    if profile is None:
        return PersonalizedVector(query_vector, 0.0, True, f"unknown user {user_id!r}: no stored history")
    if profile.event_count < config.min_history:
        return PersonalizedVector(
            query_vector, 0.0, True,
            f"user {user_id!r} has {profile.event_count} events, fewer than min_history={config.min_history}",
        )
    return PersonalizedVector(blend(query_vector, profile.vector, config.alpha), config.alpha, False)


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
        raise TrainingError(f"{len(product_ids)} product ids for {len(product_matrix)} product vectors")
    queries = np.stack([personalize(case.query_vector, case.user_id, case.profile, config).vector
                        for case in cases]).astype(np.float32)  # (n_cases, dim)
    recalls = np.zeros(len(cases))
    k = min(k, len(product_ids))
    for start in range(0, len(cases), 1024):
        scores = queries[start:start + 1024] @ product_matrix.T  # (chunk, n_products)
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
        raise TrainingError("tune_alpha needs at least one validation case")
    recall = {float(alpha): float(recall_at_k(cases, product_ids, product_matrix, replace(config, alpha=alpha), k).mean())
              for alpha in grid}
    best = max(sorted(recall), key=lambda alpha: recall[alpha])
    return AlphaTuning(best_alpha=best, recall=recall, k=k)


def _check_alpha(alpha: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise TrainingError(f"alpha must be in [0, 1] (0 = plain query, 1 = user vector only), got {alpha!r}")


def _decay(age: float, half_life: float | None) -> float:
    return 1.0 if half_life is None else 0.5 ** (age / half_life)


def _normalize(vector: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(vector)
    if norm == 0:
        raise TrainingError("a user vector summed to zero; check that product vectors are not all zero")
    return vector / norm


def _jsonl_records(path: Path) -> Iterable[tuple[int, dict[str, object]]]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise TrainingError(f"{path}:{number}: not a JSON object ({exc.msg}); fix or drop the line") from exc


def _csv_records(path: Path) -> Iterable[tuple[int, dict[str, object]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in HISTORY_COLUMNS if column not in (reader.fieldnames or [])]
        if missing:
            raise TrainingError(f"{path}: missing columns {missing}; a history has {', '.join(HISTORY_COLUMNS)}")
        for number, row in enumerate(reader, start=2):
            yield number, dict(row)


def _event(record: object, path: Path, line: int) -> UserEvent:
    if not isinstance(record, dict) or any(record.get(column) in (None, "") for column in HISTORY_COLUMNS):
        raise TrainingError(f"{path}:{line}: needs non-empty {', '.join(HISTORY_COLUMNS)}, got {record!r}")
    return UserEvent(
        user_id=str(record["user_id"]).strip(),
        product_id=str(record["product_id"]).strip(),
        event=str(record["event"]).strip().lower(),
        timestamp=_timestamp(record["timestamp"], path, line),
        source=str(record.get("source") or "real"),
    )


def _timestamp(value: object, path: Path, line: int) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        pass
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise TrainingError(f"{path}:{line}: timestamp {value!r} is neither a number nor an ISO 8601 date") from exc
