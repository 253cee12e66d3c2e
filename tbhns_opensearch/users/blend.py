"""Query-time personalization: blend the query vector with the user's, or fall back to the plain query."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tbhns_opensearch.errors import PersonalizationError
from tbhns_opensearch.users.profiles import PersonalizationConfig, UserProfile, check_alpha


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
        raise PersonalizationError(f"query vector {query.shape} and user vector {user.shape} differ in shape; "
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
