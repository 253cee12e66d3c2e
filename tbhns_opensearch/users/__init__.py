"""Users: histories (events), user vectors (profiles), blending with the query (blend), alpha tuning
(tuning), user sources (instacart, simulator) and the users index (store).

Personalization: user vectors from histories, blended with the query vector, with an explicit fallback.

A user's history is a list of events (`user_id, product_id, event, timestamp`); each event type has a weight
(purchase > add_to_cart > click by default). The user vector is the recency- and event-weighted mean of the
vectors of the products in the history, normalized:

    w_i = event_weight[event_i] * 0.5 ** ((t_last - t_i) / half_life)      u = normalize(sum_i w_i v_i)

where `t_last` is the user's latest event. The personalized query vector is
`normalize((1 - alpha) * q + alpha * u)`. A user with fewer than `min_history` events (or no user, or an
unknown one) gets `alpha = 0`: exactly the plain query vector, and the result says `fallback=True` and why.
`alpha` is tuned on validation users with `tuning.tune_alpha` (a grid search of Recall@K on held-out purchases).

Learned personalization: a user model (`attention`, trained by `attention_training`) attends over the user's last
products, stored beside the user vector with `PersonalizationConfig.history_size` (`ingest-users --history`), and
lives in the encoder directory's `user_model/` folder. `blend.personalize` uses it where it is given and the
profile stores a history (`method="learned"`), else the blend (`"blend"`); the fallbacks are the same.

Example:
    >>> import numpy as np
    >>> from tbhns_opensearch.users.blend import personalize
    >>> from tbhns_opensearch.users.events import UserEvent
    >>> from tbhns_opensearch.users.profiles import PersonalizationConfig, build_user_profiles
    >>> config = PersonalizationConfig(min_history=2, alpha=0.5)
    >>> events = [UserEvent("u1", "p1", "purchase", 1.0), UserEvent("u1", "p2", "click", 2.0)]
    >>> vectors = {"p1": np.array([1.0, 0.0]), "p2": np.array([0.0, 1.0])}
    >>> profile = build_user_profiles(events, vectors, config)["u1"]
    >>> result = personalize(np.array([0.0, 1.0]), "u1", profile, config)
    >>> result.fallback, result.alpha
    (False, 0.5)
"""
