"""The package as a user installs it: a wheel in a fresh virtualenv, run from a directory outside the checkout.

Builds the wheel, installs it (with its declared dependencies; torch from ../shared/wheels when present) into a
new virtualenv, then from an empty directory starts a node with `tbhns opensearch start`, ingests a fixture
catalog, searches in every mode and stops the node (also after losing its pid file). The commands never import
the checkout.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tbhns_opensearch.cluster.node import LocalNode, NodeConfig, default_cache_dir
from tests.helpers import FIXTURES, ROOT

pytestmark = pytest.mark.integration
PORT = 9271


def run(*command: str | Path, cwd: Path, timeout: int = 900) -> str:
    done = subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_a_wheel_installed_outside_the_checkout_starts_a_node_ingests_and_searches(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a clean copy: setuptools' build/ in a checkout can hold stale modules
    shutil.copytree(
        ROOT,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(".git", ".venv", "build", "runs", "*.egg-info", "__pycache__", ".pytest_cache"),
    )
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp_path / "dist", source, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("tbhns_opensearch-*.whl")
    run(sys.executable, "-m", "venv", tmp_path / "venv", cwd=tmp_path)
    pip = [tmp_path / "venv" / "bin" / "python", "-m", "pip", "install", "-q"]
    wheels = ROOT.parent / "shared" / "wheels"
    if wheels.is_dir():
        run(*pip, "--find-links", wheels, "torch==2.13.0", cwd=tmp_path)
    run(*pip, wheel, cwd=tmp_path)
    page = run(
        tmp_path / "venv" / "bin" / "python",
        "-c",
        "from tbhns_opensearch.api.app import PAGE; print(sorted(p.name for p in PAGE.iterdir()))",
        cwd=tmp_path,
    )
    assert all(name in page for name in ("index.html", "page.js", "page.css")), page  # the comparison page ships
    user = tmp_path / "elsewhere"
    user.mkdir()
    shutil.copy(FIXTURES / "toys_products.jsonl", user / "catalog.jsonl")
    tbhns = tmp_path / "venv" / "bin" / "tbhns"
    run(tbhns, "opensearch", "start", "--port", PORT, cwd=user)  # node data in the cache, per port
    try:
        run(tbhns, "ingest", "catalog.jsonl", "--alias", "wheel-products", "--port", PORT, cwd=user)
        for mode in ("bm25", "semantic", "personalized", "hybrid"):
            hits = json.loads(
                run(
                    tbhns,
                    "search",
                    "wooden train set",
                    "--mode",
                    mode,
                    "--alias",
                    "wheel-products",
                    "--port",
                    PORT,
                    "--k",
                    "5",
                    "--json",
                    cwd=user,
                )
            )
            assert len(hits["hits"]) == 5, (mode, hits)
    finally:
        (default_cache_dir() / "nodes" / str(PORT) / "node.pid").unlink(missing_ok=True)  # as if its pid file was lost
        run(tbhns, "opensearch", "stop", "--port", PORT, cwd=user)  # finds our node by asking it
    assert LocalNode(NodeConfig(http_port=PORT)).health() is None
