"""Query passes of a bench run: every system over every query, interleaved query by query, and the throughput
of one system under concurrent clients.

Interleaving is what makes the latencies of one report comparable: the systems take turns on each query, in
an order shuffled per query (seeded), so a node that warms up as the run goes, a machine that gets busier, the
order of the systems in the config, or the caches one system leaves warm for the next (two systems on one
index, the same query) weigh on every system alike.

Example:
    >>> from types import SimpleNamespace as Hit
    >>> class OneHit:  # anything with SearchClient's `search`
    ...     def search(self, text, user_id=None, mode="bm25", k=10):
    ...         return Hit(hits=[Hit(id="p1", score=1.5)], fallback=False, personalization=None)
    >>> runs = run_interleaved([SystemUnderTest("bm25", OneHit(), "bm25")], {"q1": "usb cable"}, depth=10)
    >>> runs["bm25"].run, len(runs["bm25"].latencies)
    ({'q1': {'p1': 1.5}}, 1)
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from tqdm import tqdm

from tbhns_opensearch.eval.runs import Run
from tbhns_opensearch.query.results import USER_MODES, SearchResponse

WARM_UP_QUERIES = 5
"""Queries each system answers before the timed pass (connections, encoder and node caches)."""
ORDER_SEED = 0
"""Seeds the systems' order on each query of the timed pass."""


class Searcher(Protocol):
    """What a pass sends queries to: `SearchClient.search`'s signature."""

    def search(self, query: str, user_id: str | None = None, mode: str = "hybrid", k: int = 24) -> SearchResponse: ...


@dataclass(frozen=True)
class SystemUnderTest:
    """A system of the config as the pass runs it: a `SearchClient` (anything with its `search`), the mode,
    and the user of each query id for personalized systems (empty: no user)."""

    name: str
    search: Searcher
    mode: str
    user_of: Mapping[str, str] = field(default_factory=dict)

    def ask(self, qid: str, text: str, depth: int) -> SearchResponse:
        """The system's answer to query `qid` (`text`), `depth` hits, as the query's user where it has one."""
        return self.search.search(text, user_id=self.user_of.get(qid), mode=self.mode, k=depth)

    def asked(self, qid: str, text: str) -> set[tuple[str, str | None]]:
        """What asking query `qid` brings to the system: its text, and its user in a mode that reads the user's
        profile (`USER_MODES`; None: no user, or a mode that reads none)."""
        return {("text", text), ("user", self.user_of.get(qid) if self.mode in USER_MODES else None)}


@dataclass(frozen=True)
class SystemRun:
    """One pass of every query: the run, per-query latencies (seconds), which of those queries were `warm`, how
    many fell back and how many were personalized by each method ("blend", "learned").

    A query is warm for a system when its text, and its user where the system reads profiles (`asked`), each
    came to that system before (in the warm-up or earlier in the pass): its vector was cached and its user's
    profile held, so it paid no first encoding and no first profile read."""

    run: Run
    latencies: list[float]
    fallbacks: int
    methods: Counter[str] = field(default_factory=Counter)
    warm: list[bool] = field(default_factory=list)

    @property
    def warm_latencies(self) -> list[float]:
        """The latencies of the warm queries."""
        return [seconds for seconds, warm in zip(self.latencies, self.warm) if warm]


def run_interleaved(systems: Sequence[SystemUnderTest], texts: Mapping[str, str], depth: int) -> dict[str, SystemRun]:
    """Each query once through every system, one client thread, after `WARM_UP_QUERIES` untimed queries per
    system; on each query the systems run in an order shuffled with `ORDER_SEED`. Runs by system name."""
    items = list(texts.items())
    met: dict[str, set[tuple[str, str | None]]] = {system.name: {("user", None)} for system in systems}
    for system in systems:
        for qid, text in items[:WARM_UP_QUERIES]:
            system.ask(qid, text, depth)
            met[system.name] |= system.asked(qid, text)
    runs: dict[str, Run] = {system.name: {} for system in systems}
    latencies: dict[str, list[float]] = {system.name: [] for system in systems}
    warm: dict[str, list[bool]] = {system.name: [] for system in systems}
    fallbacks: Counter[str] = Counter()
    methods: dict[str, Counter[str]] = {system.name: Counter() for system in systems}
    shuffler = random.Random(ORDER_SEED)
    for qid, text in tqdm(items, desc="queries", unit="q", leave=False):
        for system in shuffler.sample(systems, len(systems)):
            started = time.perf_counter()
            response = system.ask(qid, text, depth)
            latencies[system.name].append(time.perf_counter() - started)
            asked = system.asked(qid, text)
            warm[system.name].append(asked <= met[system.name])
            met[system.name] |= asked
            runs[system.name][qid] = {hit.id: hit.score for hit in response.hits}
            fallbacks[system.name] += response.fallback
            methods[system.name].update([response.personalization] if response.personalization else [])
    return {name: SystemRun(runs[name], latencies[name], fallbacks[name], methods[name], warm[name]) for name in runs}


def measure_qps(
    system: SystemUnderTest, qids: Sequence[str], texts: Mapping[str, str], clients: int, depth: int
) -> float:
    """Queries per second of `system` with `clients` concurrent threads sending the queries `qids`."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(lambda qid: system.ask(qid, texts[qid], depth), qids))
    return len(qids) / (time.perf_counter() - started)
