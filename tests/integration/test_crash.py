"""kill -9 in the middle of an ingest, then rerun: every product exactly once, and the alias never serves a
partial or empty index. A real `tbhns ingest` process is killed while it writes to the real node."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tbhns_opensearch.catalog import write_catalog_jsonl
from tbhns_opensearch.index.templates import alias_targets
from tests.conftest import fixture_products

pytestmark = pytest.mark.integration
PRODUCTS = 900  # two encode chunks of 512: the kill lands after the first bulk writes, before the end


def _ingest(catalog: Path, alias: str, url: str, *flags: str) -> subprocess.Popen[bytes]:
    tbhns = Path(sys.executable).parent / "tbhns"
    return subprocess.Popen([tbhns, "ingest", str(catalog), "--alias", alias, *flags], env={**os.environ, "OPENSEARCH_URL": url},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def _kill_once_writing(process: subprocess.Popen[bytes], os_client, alias: str) -> None:
    """SIGKILL as soon as documents reach a new `<alias>-*` index (counted by indexing operations: the index
    is not refreshed while it is filled)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        stats = os_client.indices.stats(index=f"{alias}-*", metric="indexing")
        written = {name: s["primaries"]["indexing"]["index_total"] for name, s in stats.get("indices", {}).items()}
        if any(count and name not in alias_targets(os_client, alias) for name, count in written.items()):
            process.send_signal(signal.SIGKILL)
            process.wait()
            return
        time.sleep(0.05)
    pytest.fail("the ingest ended before it could be killed mid-write")


def test_kill_9_during_a_first_ingest_and_a_rebuild_loses_and_duplicates_nothing(
    os_client, opensearch_config, tmp_path: Path
) -> None:
    alias = f"crash-{uuid.uuid4().hex[:8]}"
    catalog = tmp_path / "catalog.jsonl"
    write_catalog_jsonl(fixture_products("toys_products.jsonl")[:PRODUCTS], catalog)
    try:
        _kill_once_writing(_ingest(catalog, alias, opensearch_config.url), os_client, alias)
        assert alias_targets(os_client, alias) == []  # a killed first ingest serves nothing, not a partial index
        assert _ingest(catalog, alias, opensearch_config.url).wait() == 0  # the rerun
        (complete,) = alias_targets(os_client, alias)
        assert os_client.count(index=alias)["count"] == PRODUCTS  # every product exactly once
        assert set(os_client.indices.get(index=f"{alias}-*")) == {complete}  # the killed run's index is gone

        _kill_once_writing(_ingest(catalog, alias, opensearch_config.url, "--rebuild"), os_client, alias)
        assert alias_targets(os_client, alias) == [complete]  # still the complete index
        assert os_client.count(index=alias)["count"] == PRODUCTS
        assert _ingest(catalog, alias, opensearch_config.url, "--rebuild").wait() == 0
        (rebuilt,) = alias_targets(os_client, alias)
        assert rebuilt != complete and os_client.count(index=alias)["count"] == PRODUCTS
        assert set(os_client.indices.get(index=f"{alias}-*")) == {rebuilt}  # no orphan after the rerun
    finally:
        os_client.indices.delete(index=f"{alias}-*", ignore_unavailable=True)
