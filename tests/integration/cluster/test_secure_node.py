"""`tbhns opensearch start --secure` on a node of its own (port 9282): TLS and basic auth on, every command
works through the printed OPENSEARCH_* settings, and wrong credentials are one line, exit 3, no secret shown."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tbhns_opensearch.catalog import write_catalog_jsonl
from tbhns_opensearch.cluster import NodeConfig
from tests.helpers import fixture_products

pytestmark = pytest.mark.integration
PORT = 9282
TBHNS = Path(sys.executable).parent / "tbhns"


def _tbhns(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TBHNS), *args], env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture
def secured() -> Iterator[dict[str, str]]:
    node_dir = NodeConfig(http_port=PORT).node_dir
    shutil.rmtree(node_dir, ignore_errors=True)
    plain = {k: v for k, v in os.environ.items() if not k.startswith("OPENSEARCH_")}
    started = _tbhns("opensearch", "start", "--secure", "--port", str(PORT), "--heap", "512m", env=plain)
    try:
        assert started.returncode == 0, started.stderr[-2000:]
        exports = dict(
            line.removeprefix("export ").split("=", 1)
            for line in started.stdout.splitlines()
            if line.startswith("export ")
        )
        assert set(exports) == {"OPENSEARCH_URL", "OPENSEARCH_USER", "OPENSEARCH_PASSWORD", "OPENSEARCH_CA_CERTS"}
        yield {**plain, **exports}
    finally:
        _tbhns("opensearch", "stop", "--port", str(PORT), env=plain)
        shutil.rmtree(node_dir, ignore_errors=True)


def test_a_secured_node_serves_ingest_and_every_search_mode_only_with_credentials(
    secured: dict[str, str], tmp_path: Path
) -> None:
    url = secured["OPENSEARCH_URL"]
    assert url == f"https://127.0.0.1:{PORT}"
    with pytest.raises(OSError):  # plain http is refused (the connection is dropped)
        urllib.request.urlopen(f"http://127.0.0.1:{PORT}/", timeout=5)
    with pytest.raises(urllib.error.HTTPError, match="401"):  # TLS without credentials is refused
        urllib.request.urlopen(
            url, timeout=5, context=ssl.create_default_context(cafile=secured["OPENSEARCH_CA_CERTS"])
        )

    catalog = tmp_path / "catalog.jsonl"
    write_catalog_jsonl(fixture_products("toys_products.jsonl")[:40], catalog)
    ingested = _tbhns("ingest", str(catalog), "--alias", "secured", env=secured)
    assert ingested.returncode == 0, ingested.stderr[-2000:]
    for mode in ("bm25", "semantic", "hybrid"):
        found = _tbhns("search", "toy train", "--mode", mode, "--alias", "secured", "--k", "3", "--json", env=secured)
        assert found.returncode == 0 and '"id"' in found.stdout, (mode, found.stderr[-1000:])
    status = _tbhns(
        "opensearch",
        "status",
        "--port",
        str(PORT),
        env={k: v for k, v in secured.items() if not k.startswith("OPENSEARCH_")},
    )
    assert status.returncode == 0 and '"tbhns-local"' in status.stdout  # finds the secured node by its port

    wrong = _tbhns(
        "search", "toy train", "--mode", "bm25", "--alias", "secured", env={**secured, "OPENSEARCH_PASSWORD": "nope"}
    )
    assert wrong.returncode == 3 and "OPENSEARCH_PASSWORD" in wrong.stderr and "Traceback" not in wrong.stderr
    no_ca = _tbhns(
        "search",
        "toy train",
        "--mode",
        "bm25",
        "--alias",
        "secured",
        env={k: v for k, v in secured.items() if k != "OPENSEARCH_CA_CERTS"},
    )
    assert no_ca.returncode == 3 and "OPENSEARCH_CA_CERTS" in no_ca.stderr
    for done in (wrong, no_ca):
        assert secured["OPENSEARCH_PASSWORD"] not in done.stdout + done.stderr
        assert len([line for line in done.stderr.splitlines() if line.startswith("error")]) == 1
