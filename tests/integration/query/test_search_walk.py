"""One search from the HTTP endpoint to the OpenSearch request walks down the query package: it touches every
module of the query path, and every call from one of those modules to another goes down a layer (the order the
import-linter contract "One search walks down the query package" holds for imports), never up."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tbhns_opensearch.api import ServeSettings, create_app
from tests.helpers import Env, toys_search_env

pytestmark = pytest.mark.integration

LAYER = {
    "tbhns_opensearch.api.app": 0,
    "tbhns_opensearch.query.service": 1,
    "tbhns_opensearch.query.profile_reading": 2,
    "tbhns_opensearch.query.hybrid": 2,
    "tbhns_opensearch.query.transport": 3,
    "tbhns_opensearch.query.results": 4,
}


@pytest.fixture(scope="module")
def env(os_client, opensearch_config, encoder) -> Iterator[Env]:  # type: ignore[no-untyped-def]
    yield from toys_search_env(os_client, opensearch_config, encoder)


def _walk(app: TestClient, params: dict[str, Any]) -> list[tuple[str, str]]:
    """(caller module, callee module) of every call between two modules of `LAYER` while `app` answers `params`,
    on every thread the search uses (the endpoint's worker, the profile reader)."""
    edges: list[tuple[str, str]] = []

    def trace(frame: FrameType, event: str, _: object) -> None:
        callee = frame.f_globals.get("__name__", "")
        caller = frame.f_back.f_globals.get("__name__", "") if frame.f_back is not None else ""
        if event == "call" and callee in LAYER and caller != callee:
            edges.append((caller, callee))

    threading.setprofile(trace)  # threads started from now on: the app's worker threads, the profile reader
    sys.setprofile(trace)
    try:
        with app:  # a fresh portal: its worker threads start under the profiler
            response = app.get("/search", params=params)
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    return edges


@pytest.mark.parametrize("path", ["server", "client"])
def test_one_personalized_hybrid_search_walks_down_the_query_package(env: Env, opensearch_config, path: str) -> None:
    settings = ServeSettings(opensearch_config, alias=env.alias, users_index=env.users_index, warm=False)
    params = {"query": "toy car for a boy", "user_id": "slotcar-fan", "mode": "hybrid", "path": path, "k": 5}
    edges = _walk(TestClient(create_app(settings, search_client=env.search)), params)
    within = [(caller, callee) for caller, callee in edges if caller in LAYER]
    assert {callee for _, callee in edges} == set(LAYER)  # the walk touches every module of the path
    upward = [(caller, callee) for caller, callee in within if LAYER[callee] <= LAYER[caller]]
    assert within and not upward, upward
