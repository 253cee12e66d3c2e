"""Query-time personalization: the learned user model (`users.attention`) where the user has a stored history,
else the fixed blend of the query vector with the user's, else (no user, unknown user, short history) the
plain query."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tbhns_opensearch.errors import PersonalizationError
from tbhns_opensearch.users.profiles import PersonalizationConfig, UserProfile, check_alpha

if TYPE_CHECKING:  # torch is imported only where a user model is loaded
    from tbhns_opensearch.users.attention import QueryTimeUserModel

METHODS = ("plain", "blend", "learned")
"""How a personalized vector was made: the plain query (fallback), the fixed blend, the learned user model."""


@dataclass(frozen=True, eq=False)
class PersonalizedVector:
    """The vector a personalized search uses, and how it was made.

    Args:
        vector: Unit-length vector, shape (dim,); the query vector itself when `fallback` is True.
        alpha: The user's weight: the blend's alpha, or the learned model's attention weight on the history
            (0.0 on fallback).
        fallback: True when the plain query vector is returned (no user, unknown user, short history).
        reason: Why it fell back, for the response; None when personalized.
        method: A name of `METHODS`: "plain" on fallback, else "blend" or "learned".
    """

    vector: np.ndarray  # (dim,)
    alpha: float
    fallback: bool
    reason: str | None = None
    method: str = "plain"

    def __post_init__(self) -> None:
        if self.method not in METHODS or (self.method == "plain") != self.fallback:
            raise PersonalizationError(
                f"method {self.method!r} with fallback={self.fallback}: the method is one of "
                f"{METHODS}, and 'plain' exactly when falling back"
            )


def blend(query_vector: np.ndarray, user_vector: np.ndarray, alpha: float) -> np.ndarray:
    """normalize((1 - alpha) * q + alpha * u), with the dtype of `query_vector`.

    Example:
        >>> blend(np.array([1.0, 0.0]), np.array([0.0, 1.0]), 0.5).round(4)
        array([0.7071, 0.7071])
    """
    check_alpha(alpha)
    query = np.asarray(query_vector)
    user = np.asarray(user_vector, dtype=query.dtype)
    if query.shape != user.shape:
        raise PersonalizationError(
            f"query vector {query.shape} and user vector {user.shape} differ in shape; "
            "build user vectors with the encoder the product index was built with"
        )
    mixed = (1.0 - alpha) * query + alpha * user  # (dim,)
    norm = np.linalg.norm(mixed)
    return (mixed / norm).astype(query.dtype) if norm > 0 else query


def personalize(
    query_vector: np.ndarray,
    user_id: str | None,
    profile: UserProfile | None,
    config: PersonalizationConfig,
    user_model: QueryTimeUserModel | None = None,
    space: str | None = None,
) -> PersonalizedVector:
    """The learned vector (a `user_model` and a stored history), else the blended one, or the plain
    `query_vector` itself (fallback) with the reason: no user, an unknown one, fewer than `min_history` events,
    or a profile built from product vectors of another space than the index's.

    Args:
        query_vector: Unit query vector (dim,).
        user_id: The requested user, or None.
        profile: That user's stored profile, or None when there is none.
        config: `alpha` and `min_history`.
        user_model: The learned user model at query time (`UserAttention.at_query_time`); None: always blend.
        space: The product index's vector space (`index.vector_space.space_id`); None: unknown, not checked.

    Example:
        >>> q = np.array([1.0, 0.0])
        >>> personalize(q, "u9", None, PersonalizationConfig()).reason
        "unknown user 'u9': no stored history"
        >>> profile = UserProfile("u9", np.array([0.0, 1.0]), 5, 0.0, "real")
        >>> personalize(q, "u9", profile, PersonalizationConfig()).method
        'blend'
    """
    if user_id is None:
        return PersonalizedVector(query_vector, 0.0, True, "no user_id given")
    if profile is None:
        return PersonalizedVector(query_vector, 0.0, True, f"unknown user {user_id!r}: no stored history")
    if profile.event_count < config.min_history:
        return PersonalizedVector(
            query_vector,
            0.0,
            True,
            f"user {user_id!r} has {profile.event_count} events, fewer than min_history={config.min_history}",
        )
    if space is not None and profile.space is not None and profile.space != space:
        return PersonalizedVector(
            query_vector,
            0.0,
            True,
            f"the stored profile of user {user_id!r} was built from another encoder's product vectors than the "
            "index holds now; run `tbhns ingest-users` again",
        )
    if user_model is not None and profile.history is not None and len(profile.history):
        vector, weight = user_model.personalize(query_vector, profile.history)
        return PersonalizedVector(vector, weight, False, method="learned")
    return PersonalizedVector(blend(query_vector, profile.vector, config.alpha), config.alpha, False, method="blend")
