"""User profiles: the recency- and event-weighted mean of the vectors of a user's products, normalized, and
(with `PersonalizationConfig.history_size`) the user's last products, most recent first, for the learned user
model (`users.attention`)."""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from tbhns_opensearch.config import is_count
from tbhns_opensearch.errors import PersonalizationError
from tbhns_opensearch.users.events import UserEvent

DEFAULT_EVENT_WEIGHTS: Mapping[str, float] = {"purchase": 1.0, "add_to_cart": 0.5, "click": 0.2}


@dataclass(frozen=True)
class PersonalizationConfig:
    """How histories become user vectors and how much they move the query.

    Args:
        event_weights: Weight of each event type in the user vector (a mapping; stored as sorted pairs).
        half_life: Recency half-life in the units of the timestamps (seconds for dates; order numbers for
            Instacart); an event this much older than the user's latest counts half. None: no decay.
        min_history: Users with fewer events get the plain query (alpha = 0, fallback).
        alpha: Weight of the user vector in normalize((1 - alpha) q + alpha u), in [0, 1].
        history_size: Last products kept per user for the learned user model (`UserProfile.history`); 0: none.

    Example:
        >>> PersonalizationConfig(event_weights={"purchase": 1.0}).weights
        {'purchase': 1.0}
    """

    event_weights: Mapping[str, float] | tuple[tuple[str, float], ...] = field(
        default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS),
        metadata={"help": "weight of each event type in the user vector"},
    )
    half_life: float | None = field(
        default=30 * 86400.0,
        metadata={"help": "recency half-life in timestamp units: an event this much older than the latest counts half"},
    )
    min_history: int = field(default=3, metadata={"help": "users with fewer events get the plain query (fallback)"})
    alpha: float = field(default=0.3, metadata={"help": "user vector weight when personalizing"})
    history_size: int = field(
        default=0, metadata={"help": "last products kept per user for the learned user model; 0: none"}
    )

    def __post_init__(self) -> None:
        pairs = self.event_weights.items() if isinstance(self.event_weights, Mapping) else self.event_weights
        weights = tuple(sorted((str(name), float(weight)) for name, weight in pairs))
        if not weights or any(weight <= 0 or not math.isfinite(weight) for _, weight in weights):
            raise PersonalizationError(
                f"event_weights must give each event type a positive weight, got {dict(weights)}"
            )
        object.__setattr__(self, "event_weights", weights)
        if self.half_life is not None and not self.half_life > 0:
            raise PersonalizationError(f"half_life must be positive (or None for no decay), got {self.half_life!r}")
        if not is_count(self.min_history, minimum=1):
            raise PersonalizationError(f"min_history must be an integer >= 1, got {self.min_history!r}")
        check_alpha(self.alpha)
        if not is_count(self.history_size):
            raise PersonalizationError(
                f"history_size must be an integer >= 0 (0: store no history), got {self.history_size!r}"
            )

    @property
    def weights(self) -> dict[str, float]:
        return dict(self.event_weights)  # type: ignore[arg-type]


@dataclass(frozen=True, eq=False)
class UserHistory:
    """A user's last products, most recent first: what the learned user model attends to.

    Args:
        ids: Product ids.
        orders_before: Per product, the orders before the user's next one it was bought in (1: the latest
            order; an order is the events sharing one timestamp).
        vectors: (n, dim) float32 product vectors, one row per id.

    Example:
        >>> history = UserHistory(("p2", "p1"), (1, 2), np.float32([[0, 1], [1, 0]]))
        >>> len(history), history == UserHistory(("p2", "p1"), (1, 2), np.float32([[0, 1], [1, 0]]))
        (2, True)
    """

    ids: tuple[str, ...]
    orders_before: tuple[int, ...]
    vectors: np.ndarray  # (n, dim) float32

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", tuple(self.ids))
        object.__setattr__(self, "orders_before", tuple(int(n) for n in self.orders_before))
        object.__setattr__(self, "vectors", np.ascontiguousarray(self.vectors, dtype=np.float32))
        if self.vectors.ndim != 2 or not len(self.ids) == len(self.orders_before) == self.vectors.shape[0]:
            raise PersonalizationError(
                f"a history needs one orders_before and one vector row per product id: got "
                f"{len(self.ids)} ids, {len(self.orders_before)} orders_before and vectors of "
                f"shape {self.vectors.shape}"
            )
        if any(n < 1 for n in self.orders_before):
            raise PersonalizationError(
                f"history orders_before must be >= 1 (1: the latest order), got {self.orders_before}"
            )

    def __len__(self) -> int:
        return len(self.ids)

    @cached_property
    def digest(self) -> str:
        """A fingerprint of the ids, orders and vectors, stored beside them (`history_digest`): a profile read
        without its vectors reuses a history already held when the digests agree.

        Example:
            >>> (
            ...     UserHistory(("p1",), (1,), np.float32([[1, 0]])).digest
            ...     == UserHistory(("p1",), (2,), np.float32([[1, 0]])).digest
            ... )
            False
        """
        digest = hashlib.sha256(json.dumps([self.ids, self.orders_before]).encode())
        digest.update(self.vectors.tobytes())
        return digest.hexdigest()[:32]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UserHistory):
            return NotImplemented
        return (self.ids, self.orders_before) == (other.ids, other.orders_before) and np.array_equal(
            self.vectors, other.vectors
        )


@dataclass(frozen=True, eq=False)
class UserProfile:
    """A user's vector and what it was built from.

    Args:
        user_id: The user.
        vector: Unit-length user vector, shape (dim,).
        event_count: Events that went into the vector (those whose product has a vector).
        last_event: Timestamp of the latest of them.
        source: "real" or "simulated".
        history: The last `PersonalizationConfig.history_size` products, most recent first; None when none was
            stored.
        space: The vector space of the product vectors it was built from (`index.vector_space.space_id`); None
            when unknown.
    """

    user_id: str
    vector: np.ndarray  # (dim,)
    event_count: int
    last_event: float
    source: str
    history: UserHistory | None = None
    space: str | None = None

    def __eq__(self, other: object) -> bool:
        """Same user, events, vector, history and space (arrays compared by value).

        Example:
            >>> (
            ...     UserProfile("u", np.float32([0.6, 0.8]), 3, 1.0, "real")
            ...     == UserProfile("u", np.float32([0.6, 0.8]), 3, 1.0, "real")
            ... )
            True
        """
        if not isinstance(other, UserProfile):
            return NotImplemented
        same_history = (self.user_id, self.event_count, self.last_event, self.source, self.history, self.space) == (
            other.user_id,
            other.event_count,
            other.last_event,
            other.source,
            other.history,
            other.space,
        )
        return same_history and np.array_equal(self.vector, other.vector)


def build_user_profiles(
    events: Iterable[UserEvent], product_vectors: Mapping[str, np.ndarray], config: PersonalizationConfig
) -> dict[str, UserProfile]:
    """One profile per user with at least one event whose product has a vector; others are left out.

    Args:
        events: Any order; events of unknown event types raise a PersonalizationError.
        product_vectors: Product id -> unit vector (dim,). Events of products without one are skipped.
        config: Event weights, half-life and how many of the last products to keep (`history_size`).

    Example:
        >>> vectors = {"p1": np.array([3.0, 4.0]) / 5}
        >>> build_user_profiles([UserEvent("u", "p1", "click", 0.0)], vectors, PersonalizationConfig())["u"].vector
        array([0.6, 0.8])
    """
    weights = config.weights
    by_user: dict[str, list[UserEvent]] = defaultdict(list)
    orders: dict[str, set[float]] = defaultdict(set)  # every timestamp of the user: an order, even of unknown products
    for event in events:
        orders[event.user_id].add(event.timestamp)
        if event.event not in weights:
            raise PersonalizationError(
                f"event type {event.event!r} of user {event.user_id!r} has no weight; valid types are "
                f"{sorted(weights)} (set PersonalizationConfig.event_weights to add it)"
            )
        if event.product_id in product_vectors:
            by_user[event.user_id].append(event)
    profiles = {}
    for user_id, history in by_user.items():
        sources = {event.source for event in history}
        if len(sources) > 1:
            raise PersonalizationError(
                f"user {user_id!r} mixes real and simulated events; give simulated users own ids"
            )
        last = max(event.timestamp for event in history)
        matrix = np.stack([np.asarray(product_vectors[event.product_id], dtype=np.float64) for event in history])
        event_weights = np.array(
            [weights[event.event] * _decay(last - event.timestamp, config.half_life) for event in history]
        )  # (n,)
        profiles[user_id] = UserProfile(
            user_id=user_id,
            vector=_normalize(event_weights @ matrix),  # (dim,)
            event_count=len(history),
            last_event=last,
            source=sources.pop(),
            history=_last_products(history, orders[user_id], product_vectors, config.history_size)
            if config.history_size
            else None,
        )
    return profiles


def _last_products(
    events: Sequence[UserEvent], orders: Iterable[float], product_vectors: Mapping[str, np.ndarray], size: int
) -> UserHistory:
    """The `size` latest of one user's `events` (input order within a timestamp) as a `UserHistory`; `orders`:
    every timestamp of the user (an order's products may all lack vectors).

    Example:
        >>> events = [UserEvent("u", "a", "purchase", 1.0), UserEvent("u", "b", "purchase", 3.0),
        ...           UserEvent("u", "c", "purchase", 1.0)]
        >>> history = _last_products(events, {1.0, 2.0, 3.0}, {p: np.float32([1.0]) for p in "abc"}, 5)
        >>> history.ids, history.orders_before
        (('b', 'a', 'c'), (1, 3, 3))
    """
    latest = sorted(events, key=lambda event: -event.timestamp)[:size]  # stable: input order within a timestamp
    later = {t: n for n, t in enumerate(sorted(set(orders), reverse=True))}  # timestamp -> orders after it
    return UserHistory(
        ids=tuple(event.product_id for event in latest),
        orders_before=tuple(1 + later[event.timestamp] for event in latest),
        vectors=np.stack([np.asarray(product_vectors[event.product_id], dtype=np.float32) for event in latest]),
    )


def check_alpha(alpha: float) -> None:
    """Raise unless 0 <= alpha <= 1."""
    if not 0.0 <= alpha <= 1.0:
        raise PersonalizationError(f"alpha must be in [0, 1] (0 = plain query, 1 = user vector only), got {alpha!r}")


def _decay(age: float, half_life: float | None) -> float:
    return 1.0 if half_life is None else 0.5 ** (age / half_life)


def _normalize(vector: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(vector)
    if norm == 0:
        raise PersonalizationError("a user vector summed to zero; check that product vectors are not all zero")
    return vector / norm
