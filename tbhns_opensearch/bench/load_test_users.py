"""Users for latency and load tests: each a history of random catalog products, written to a users index, so
personalized searches have real profiles to read (marked `simulated`; they only need to exist).

They have no preferences, so they say nothing about relevance. Users drawn to evaluate personalization, with
latent category and attribute preferences their events follow, come from `users.sources.simulate_users`.

Example:
    >>> write_load_test_users(client, "icecat", "latency-users", users=2)  # doctest: +SKIP
    ['simulated-0', 'simulated-1']
"""

from __future__ import annotations

import random

from opensearchpy import OpenSearch

from tbhns_opensearch.users.events import UserEvent
from tbhns_opensearch.users.profiles import PersonalizationConfig
from tbhns_opensearch.users.store import UsersIngestConfig, ingest_users

SAMPLE = 1000  # products the histories are drawn from (the first hits of a match-all search)


def write_load_test_users(
    client: OpenSearch, alias: str, users_index: str, users: int = 20, history: int = 10, seed: int = 0
) -> list[str]:
    """Write `users` users of `history` purchases each (seeded uniform draws from `alias`'s products) to
    `users_index` (created if missing); their ids."""
    rng = random.Random(seed)
    sample = [hit["_id"] for hit in client.search(index=alias, body={"size": SAMPLE, "_source": False})["hits"]["hits"]]
    ids = [f"simulated-{u}" for u in range(users)]
    events = [
        UserEvent(user_id, product_id, "purchase", float(t), "simulated")
        for user_id in ids
        for t, product_id in enumerate(rng.sample(sample, history))
    ]
    ingest_users(client, events, UsersIngestConfig(alias, users_index, PersonalizationConfig()))
    return ids
