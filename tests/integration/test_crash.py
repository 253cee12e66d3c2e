"""The crash matrix: kill -9 at five points of a first ingest and of a `--rebuild`, then rerun. Every time:
the alias never serves an empty or partial index, the rerun leaves every product exactly once, and no
orphan `<alias>-*` index is left. Real `tbhns ingest` processes against the real node
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
from tests.conftest import fixture_products
from tests.integration.crashing_ingest import POINTS

pytestmark = pytest.mark.integration
PRODUCTS = 600  # two encode chunks of 512: "mid-write" lands between them
HARNESS = Path(__file__).with_name("crashing_ingest.py")
ROOT = Path(__file__).resolve().parents[2]


def _ingest(catalog: Path, alias: str, url: str, *flags: str, crash_at: str | None = None) -> int:
    command = [sys.executable, str(HARNESS), crash_at] if crash_at else [str(Path(sys.executable).parent / "tbhns")]
    command += ([] if crash_at else ["ingest"]) + [str(catalog), "--alias", alias, *flags]
    env = {**os.environ, "OPENSEARCH_URL": url, "PYTHONPATH": str(ROOT)}
    return subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600).returncode


def _indices(os_client, alias: str) -> set[str]:  # type: ignore[no-untyped-def]
    return set(os_client.indices.get(index=f"{alias}-*", expand_wildcards="all"))


@pytest.mark.parametrize("rebuild", [False, True], ids=["first-ingest", "rebuild"])
def test_kill_9_at_every_point_then_rerun_loses_and_duplicates_nothing(
    os_client, opensearch_config, tmp_path: Path, rebuild: bool
) -> None:
    alias = f"crash-{uuid.uuid4().hex[:8]}"
    catalog = tmp_path / "catalog.jsonl"
    write_catalog_jsonl(fixture_products("toys_products.jsonl")[:PRODUCTS], catalog)
    flags = ("--rebuild",) if rebuild else ()
    try:
        for point in POINTS:
            if rebuild and not alias_targets(os_client, alias):
                assert _ingest(catalog, alias, opensearch_config.url) == 0  # a complete index to rebuild over
            if not rebuild:
                os_client.indices.delete(index=f"{alias}-*", ignore_unavailable=True)  # a first ingest each time
            before = alias_targets(os_client, alias)

            assert _ingest(catalog, alias, opensearch_config.url, *flags, crash_at=point) == -9, point
            served = alias_targets(os_client, alias)
            if point == "alias-swapped":  # the alias moved onto the new index: complete and refreshed
                assert len(served) == 1 and served != before, point
            else:
                assert served == before, point  # nothing (first ingest) or the previous complete index
            if served:
                assert os_client.count(index=alias)["count"] == PRODUCTS, point  # never partial or empty
            if point == "mid-write":
                stats = os_client.indices.stats(index=f"{alias}-*", metric="indexing")["indices"]
                assert any(s["primaries"]["indexing"]["index_total"] for name, s in stats.items() if name not in served)

            assert _ingest(catalog, alias, opensearch_config.url, *flags) == 0, point  # the rerun
            (complete,) = alias_targets(os_client, alias)
            assert os_client.count(index=alias)["count"] == PRODUCTS, point  # every product exactly once
            assert _indices(os_client, alias) == {complete}, point  # no orphan after the rerun
    finally:
        os_client.indices.delete(index=f"{alias}-*", ignore_unavailable=True)
