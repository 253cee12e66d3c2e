"""A node lost in the middle of an ingest, and a cluster spoken to in the wrong protocol: one line on stderr,
exit code 3, no traceback; the node's restart and a rerun leave every product exactly once. The test starts a
node of its own (port 9273) so it can stop it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tbhns_opensearch.catalog import write_catalog_jsonl
from tbhns_opensearch.cluster import LocalNode, NodeConfig, make_client
from tbhns_opensearch.config import OpenSearchConfig
from tests.helpers import fixture_products

pytestmark = pytest.mark.integration
PORT = 9273
PRODUCTS = 900
TBHNS = Path(sys.executable).parent / "tbhns"


def _error_lines(stderr: str) -> list[str]:
    """What the user reads, without the progress bars (tqdm redraws with carriage returns)."""
    return [line for line in stderr.replace("\r", "\n").splitlines() if line.startswith("error")]


def _assert_one_clear_line(done: subprocess.CompletedProcess[str] | tuple[int, str]) -> str:
    code, stderr = done if isinstance(done, tuple) else (done.returncode, done.stderr)
    assert code == 3, stderr[-2000:]
    assert "Traceback" not in stderr and '  File "' not in stderr, stderr[-2000:]
    (line,) = _error_lines(stderr)
    return line


@pytest.fixture
def own_node() -> Iterator[LocalNode]:
    node = LocalNode(NodeConfig(http_port=PORT, heap="512m"))
    shutil.rmtree(node.config.node_dir, ignore_errors=True)
    node.config.node_dir.mkdir(parents=True)
    yield node
    node.stop()
    shutil.rmtree(node.config.node_dir, ignore_errors=True)


def test_a_node_lost_mid_ingest_is_one_line_and_a_rerun_after_its_restart_is_complete(
    own_node: LocalNode, tmp_path: Path
) -> None:
    own_node.start()
    catalog = tmp_path / "catalog.jsonl"
    write_catalog_jsonl(fixture_products("toys_products.jsonl")[:PRODUCTS], catalog)
    env = {**os.environ, "OPENSEARCH_URL": own_node.url, "OPENSEARCH_TIMEOUT": "10"}
    ingest = [str(TBHNS), "ingest", str(catalog), "--alias", "lost"]
    process = subprocess.Popen(ingest, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    client = make_client(OpenSearchConfig(url=own_node.url))
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:  # stop the node once documents arrive
        stats = client.indices.stats(index="lost-*", metric="indexing").get("indices", {})
        if any(s["primaries"]["indexing"]["index_total"] for s in stats.values()):
            break
        time.sleep(0.05)
    assert process.poll() is None, "the ingest ended before the node could be stopped"
    own_node.stop()
    _, stderr = process.communicate(timeout=300)
    line = _assert_one_clear_line((process.returncode, stderr))
    assert "127.0.0.1" in line or "cluster" in line, line

    own_node.start()  # the same data directory: the killed ingest's index is still there, unaliased
    assert subprocess.run(ingest, env=env, capture_output=True, text=True, timeout=600).returncode == 0
    assert client.count(index="lost")["count"] == PRODUCTS  # every product exactly once
    assert len(client.indices.get(index="lost-*")) == 1  # the lost run's index was cleaned up


def test_https_against_an_http_node_is_one_line(opensearch_config: OpenSearchConfig, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.jsonl"
    write_catalog_jsonl(fixture_products("toys_products.jsonl")[:5], catalog)
    env = {
        **os.environ,
        "OPENSEARCH_URL": opensearch_config.url.replace("http://", "https://"),
        "OPENSEARCH_VERIFY_CERTS": "false",
        "OPENSEARCH_TIMEOUT": "5",
    }
    done = subprocess.run(
        [str(TBHNS), "ingest", str(catalog), "--alias", "never"], env=env, capture_output=True, text=True, timeout=300
    )
    _assert_one_clear_line(done)
