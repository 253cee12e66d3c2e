"""Reading users' stored profiles for personalized searches: a cache bounded by bytes, a first read on a thread
while the query is encoded, and later reads that ride in the search's own request.

A search asks `ProfileReader.lookup` for the user, runs its page with `profile(lookup)` and passes `lookup.rider` to
the page's first request; `settle(lookup)` then gives the stored profile the rider read. When that differs from
the one the page ran with, the caller runs the page again with it, so the answer is always the stored profile's
and an unchanged profile (the common case) costs no request of its own.

Example:
    >>> from tbhns_opensearch.config import OpenSearchConfig
    >>> reader = ProfileReader(ProductTransport(OpenSearchConfig(url="http://127.0.0.1:9200"), "products"), "users")
    >>> reader.lookup(None).rider is None  # no user: nothing to read
    True
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from cachetools import LRUCache

from tbhns_opensearch.query.transport import ProductTransport, Rider
from tbhns_opensearch.users.profiles import UserHistory, UserProfile
from tbhns_opensearch.users.store import HistoryNotRead, get_user_profile, profile_from_search, profile_search

PROFILE_READERS = 16  # profile reads in flight at once (one per concurrent search, as `serve --threads`)
USER_TTL_S = 60.0  # default seconds a user's profile read is reused (`SearchClient.user_ttl_s`)
PROFILE_CACHE_MB = 64
"""Default memory for the last profile read of the most recent users, by `cached_bytes`: 26,214 users without a
stored history (2.5 KB at 384 dimensions), 845 with 50 history products (77.5 KB)."""


@dataclass(frozen=True)
class ProfileLookup:
    """How a search gets its user's profile: `assumed` (the last read, reused), a `first_read` in flight, or a
    `rider` that reads it in the page's request (`known`: the history held, which the read leaves out)."""

    user_id: str | None
    assumed: UserProfile | None = None
    first_read: Future[UserProfile | None] | None = None
    rider: Rider | None = None
    known: UserHistory | None = None


class ProfileReader:
    """Users' profiles from `users_index`, each read reused for `ttl_s` seconds (0: read on every search), the
    last reads of the most recent users kept in `cache_mb` MB (0: none kept; every search reads its user's
    profile whole before it can run)."""

    def __init__(
        self, transport: ProductTransport, users_index: str, ttl_s: float = USER_TTL_S, cache_mb: int = PROFILE_CACHE_MB
    ) -> None:
        self.transport = transport
        self.users_index = users_index
        self.ttl_s = ttl_s
        self.cache: LRUCache[str, tuple[float, UserProfile | None]] = LRUCache(cache_mb * 2**20, cached_bytes)
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=PROFILE_READERS, thread_name_prefix="tbhns-profile")  # lazy

    def lookup(self, user_id: str | None) -> ProfileLookup:
        """How to get `user_id`'s profile for a search starting now; a first read starts on the reader thread."""
        last = self.last(user_id)
        if user_id is None or (last is not None and time.monotonic() - last[0] < self.ttl_s):
            return ProfileLookup(user_id, last[1] if last else None)
        if last is None:
            return ProfileLookup(user_id, first_read=self._pool.submit(self.read, user_id))
        known = last[1].history if last[1] is not None else None
        return ProfileLookup(
            user_id, last[1], rider=Rider(self.users_index, profile_search(user_id, known)), known=known
        )

    def profile(self, lookup: ProfileLookup) -> UserProfile | None:
        """The profile to run the page with: the first read's (waited for), else the last read."""
        return lookup.first_read.result() if lookup.first_read is not None else lookup.assumed

    def settle(self, lookup: ProfileLookup) -> UserProfile | None:
        """The stored profile, once the page ran: what its rider read, or a read of its own when the page sent no
        request for the rider (or the stored history changed since it was held)."""
        rider, user_id = lookup.rider, lookup.user_id
        if rider is None or user_id is None:
            return self.profile(lookup)
        if rider.response is not None:
            with self.transport.call(f"reading user {user_id!r} from {self.users_index}"):
                try:
                    return self.remember(user_id, profile_from_search(rider.response, lookup.known))
                except HistoryNotRead:  # the stored history changed since it was read: read the profile whole
                    pass
        return self.read(user_id)

    def last(self, user_id: str | None) -> tuple[float, UserProfile | None] | None:
        """(monotonic time of the read, profile or None for no such user) of the user's last read, if kept."""
        if user_id is None:
            return None
        with self._lock:
            return self.cache.get(user_id)

    def read(self, user_id: str) -> UserProfile | None:
        """The stored profile of `user_id` (None: no such user), read now and remembered."""
        with self.transport.call(f"reading user {user_id!r} from {self.users_index}"):
            return self.remember(user_id, get_user_profile(self.transport.client, self.users_index, user_id))

    def remember(self, user_id: str, profile: UserProfile | None) -> UserProfile | None:
        with self._lock:
            try:
                self.cache[user_id] = (time.monotonic(), profile)
            except ValueError:  # larger than the whole cache: not kept, and the user's last read goes too
                self.cache.pop(user_id, None)
        return profile


def cached_bytes(entry: tuple[float, UserProfile | None]) -> int:
    """What a profile-cache entry costs: its vectors' bytes, plus 1 KB for the rest.

    Example:
        >>> import numpy as np
        >>> cached_bytes((0.0, UserProfile("u", np.zeros(384, dtype=np.float32), 3, 0.0, "real")))
        2560
    """
    profile = entry[1]
    if profile is None:
        return 1024
    return 1024 + profile.vector.nbytes + (0 if profile.history is None else profile.history.vectors.nbytes)
