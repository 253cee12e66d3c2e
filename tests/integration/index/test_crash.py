"""The crash matrix: kill -9 and SIGTERM at five points of a first ingest and of a `--rebuild`, and at the two
points of an update of a live alias, then rerun. Every time: the alias never serves an empty or partial index
nor one whose refresh is off, the rerun leaves every product exactly once, and no orphan `<alias>-*` index
is left. Real `tbhns ingest` processes against the real node
(`crashing_ingest.py` kills itself at the named point)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tbhns_opensearch.catalog import write_catalog_jsonl
from tbhns_opensearch.index.templates import alias_targets
from tests.helpers import ROOT, fixture_products
from tests.integration.index.crashing_ingest import POINTS

pytestmark = pytest.mark.integration
PRODUCTS = 600  # two encode chunks of 512: "mid-write" lands between them
HARNESS = Path(__file__).with_name("crashing_ingest.py")


def _ingest(catalog: Path, alias: str, url: str, *flags: str, crash_at: str | None = None) -> int:
    command = [sys.executable, str(HARNESS), crash_at] if crash_at else [str(Path(sys.executable).parent / "tbhns")]
    command += ([] if crash_at else ["ingest"]) + [str(catalog), "--alias", alias, *flags]
    env = {**os.environ, "OPENSEARCH_URL": url, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600
    ).returncode


def _indices(os_client, alias: str) -> set[str]:  # type: ignore[no-untyped-def]
    return set(os_client.indices.get(index=f"{alias}-*", expand_wildcards="all"))


UPDATE_POINTS = ("mid-write", "before-refresh")  # an update of a live alias makes no index and moves no alias
MODES = {"first-ingest": tuple(POINTS), "rebuild": tuple(POINTS), "update": UPDATE_POINTS}
EXITS = {"KILL": -9, "TERM": 143}  # SIGTERM: the command cleans up and exits 128 + 15


def _refresh_interval(os_client, index: str) -> str | None:  # type: ignore[no-untyped-def]
    return os_client.indices.get_settings(index=index)[index]["settings"]["index"].get("refresh_interval")


@pytest.mark.parametrize("signal_name", EXITS)
@pytest.mark.parametrize("mode", MODES)
def test_a_kill_at_every_point_then_a_rerun_loses_and_duplicates_nothing(
    os_client, opensearch_config, tmp_path: Path, mode: str, signal_name: str
) -> None:
    alias = f"crash-{uuid.uuid4().hex[:8]}"
    catalog = tmp_path / "catalog.jsonl"
    write_catalog_jsonl(fixture_products("toys_products.jsonl")[:PRODUCTS], catalog)
    flags = ("--rebuild",) if mode == "rebuild" else ()
    try:
        for point in MODES[mode]:
            if mode == "first-ingest":
                os_client.indices.delete(index=f"{alias}-*", ignore_unavailable=True)  # a first ingest each time
            elif not alias_targets(os_client, alias):
                assert _ingest(catalog, alias, opensearch_config.url) == 0  # a complete index to write over
            before = alias_targets(os_client, alias)

            crash = f"{point}:{signal_name}"
            assert _ingest(catalog, alias, opensearch_config.url, *flags, crash_at=crash) == EXITS[signal_name], crash
            served = alias_targets(os_client, alias)
            if point == "alias-swapped":  # the alias moved onto the new index: complete and refreshed
                assert len(served) == 1 and served != before, crash
            else:
                assert served == before, crash  # nothing (first ingest) or the previous complete index
            if served:
                assert os_client.count(index=alias)["count"] == PRODUCTS, crash  # never partial or empty
                assert _refresh_interval(os_client, served[0]) != "-1", crash  # a served index always refreshes
            if point == "mid-write" and signal_name == "KILL" and mode != "update":
                stats = os_client.indices.stats(index=f"{alias}-*", metric="indexing")["indices"]
                assert any(s["primaries"]["indexing"]["index_total"] for name, s in stats.items() if name not in served)
            if signal_name == "TERM" and point != "alias-swapped":
                assert _indices(os_client, alias) == set(served), crash  # SIGTERM deletes the half index itself
                continue  # the state before the run, checked above: nothing for a rerun to mend

            assert _ingest(catalog, alias, opensearch_config.url, *flags) == 0, crash  # the rerun
            (complete,) = alias_targets(os_client, alias)
            assert os_client.count(index=alias)["count"] == PRODUCTS, crash  # every product exactly once
            assert _indices(os_client, alias) == {complete}, crash  # no orphan after the rerun
            assert _refresh_interval(os_client, complete) != "-1", crash
    finally:
        os_client.indices.delete(index=f"{alias}-*", ignore_unavailable=True)
