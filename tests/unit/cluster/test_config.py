"""Cluster configuration and node settings, without a cluster."""

from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from tbhns_opensearch.cluster import LocalNode, NodeConfig, make_client
from tbhns_opensearch.cluster.artifacts import OPENSEARCH_VERSION, PLUGIN_VERSION
from tbhns_opensearch.config import OpenSearchConfig
from tbhns_opensearch.errors import ClusterError, ConfigError
from tests.helpers import ROOT


def test_config_from_env_reads_url_auth_and_tls() -> None:
    config = OpenSearchConfig.from_env(
        {
            "OPENSEARCH_URL": "https://u:p@search:9200",
            "OPENSEARCH_USER": "u",
            "OPENSEARCH_PASSWORD": "p",
            "OPENSEARCH_VERIFY_CERTS": "false",
            "OPENSEARCH_CA_CERTS": "/ca.pem",
        }
    )
    assert (config.url, config.user, config.verify_certs, config.ca_certs) == (
        "https://u:p@search:9200",
        "u",
        False,
        "/ca.pem",
    )
    assert config.redacted_url() == "search:9200"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OPENSEARCH_URL": "search:9200"}, "must start with http"),
        ({"OPENSEARCH_VERIFY_CERTS": "maybe"}, "true or false"),
        ({"OPENSEARCH_USER": "u"}, "both OPENSEARCH_USER and OPENSEARCH_PASSWORD"),
        ({"OPENSEARCH_HTTP_COMPRESS": "gzip"}, "OPENSEARCH_HTTP_COMPRESS must be true or false"),
        ({"OPENSEARCH_POOL_MAXSIZE": "many"}, "OPENSEARCH_POOL_MAXSIZE must be a positive number"),
        ({"OPENSEARCH_POOL_MAXSIZE": "0"}, "OPENSEARCH_POOL_MAXSIZE must be a positive number"),
    ],
)
def test_bad_environment_is_rejected_with_the_fix(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        OpenSearchConfig.from_env(env)


def test_client_construction_connects_to_nothing() -> None:
    client = make_client(OpenSearchConfig(url="http://127.0.0.1:1"))  # nothing listens on port 1
    assert client.transport.hosts[0]["port"] == 1


@pytest.mark.parametrize(
    ("url", "setting", "compressed"),
    [
        ("http://127.0.0.1:9200", None, False),  # loopback: gzip costs more CPU than it saves
        ("http://localhost:9200", None, False),
        ("http://[::1]:9200", None, False),
        ("https://search.example.com:9200", None, True),
        ("http://10.0.0.5:9200", None, True),
        ("http://127.0.0.1:9200", "true", True),  # the environment decides when it says
        ("https://search.example.com:9200", "false", False),
    ],
)
def test_request_bodies_are_gzipped_to_remote_hosts_only(url: str, setting: str | None, compressed: bool) -> None:
    env = {"OPENSEARCH_URL": url} | ({"OPENSEARCH_HTTP_COMPRESS": setting} if setting else {})
    connection = make_client(OpenSearchConfig.from_env(env)).transport.get_connection()
    assert bool(connection.http_compress) is compressed


def test_the_connection_pool_keeps_as_many_connections_as_the_environment_says() -> None:
    env = {"OPENSEARCH_URL": "http://127.0.0.1:1", "OPENSEARCH_POOL_MAXSIZE": "32"}
    assert make_client(OpenSearchConfig.from_env(env)).transport.get_connection().pool.pool.maxsize == 32


def test_vectors_are_written_in_exact_float32_and_read_back_unchanged() -> None:
    serializer = make_client(OpenSearchConfig(url="http://127.0.0.1:1")).transport.serializer
    vector = np.random.default_rng(0).standard_normal(384).astype(np.float32)
    text = serializer.dumps({"embedding": vector, "price": Decimal("9.99"), "id": "p1"})
    assert len(text) < 384 * 14  # the shortest float32 form, not float64's 17 digits
    back = serializer.loads(text)
    assert np.array_equal(np.asarray(back["embedding"], dtype=np.float32), vector)
    assert (back["price"], back["id"]) == (9.99, "p1")


def test_node_construction_starts_nothing(tmp_path: Path) -> None:
    node = LocalNode(NodeConfig(http_port=9299, data_dir=tmp_path))
    assert node.pid() is None
    assert node.url == "http://127.0.0.1:9299"
    assert list(tmp_path.iterdir()) == []


def test_invalid_port_is_rejected() -> None:
    with pytest.raises(ClusterError, match="http_port must be 1-65535"):
        NodeConfig(http_port=70000)


def test_one_version_pinned_and_docker_compose_matches_it() -> None:
    assert PLUGIN_VERSION == f"{OPENSEARCH_VERSION}.0"
    compose = (ROOT / "docker" / "docker-compose.yml").read_text()
    assert re.search(r"opensearchproject/opensearch:(\S+)", compose).group(1) == OPENSEARCH_VERSION


def test_search_never_starts_a_node(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from tbhns_opensearch.cli import cli
    from tbhns_opensearch.cluster import NodeConfig
    from tbhns_opensearch.cluster.node import LocalNode
    from tbhns_opensearch.errors import ClusterError

    monkeypatch.delenv("OPENSEARCH_URL", raising=False)
    result = CliRunner().invoke(cli, ["search", "hammer", "--port", "9298"])
    assert isinstance(result.exception, ClusterError)  # `main` prints it as one line, exit code 3
    assert (
        "no OpenSearch node answers at http://127.0.0.1:9298; start one with `tbhns opensearch start --port 9298`"
        in str(result.exception)
    )
    assert LocalNode(NodeConfig(http_port=9298)).health() is None


def test_an_unreachable_cluster_is_one_line_and_exit_code_3(tmp_path) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text('{"id": "1", "title": "Claw hammer"}\n')
    tbhns = Path(sys.executable).parent / "tbhns"
    env = {**os.environ, "OPENSEARCH_URL": "http://admin:s3cret@127.0.0.1:9297"}
    done = subprocess.run([tbhns, "ingest", str(catalog)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 3, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [done.stderr.strip().splitlines()[-1]] and "ConnectionError)" in errors[0], done.stderr
    assert "Traceback" not in done.stderr and "s3cret" not in done.stderr + done.stdout


@pytest.mark.parametrize("value", ["abc", "0", "-3", "inf"])
def test_a_bad_timeout_is_a_config_error_naming_the_variable(value: str) -> None:
    from tbhns_opensearch.config import OpenSearchConfig
    from tbhns_opensearch.errors import ConfigError

    with pytest.raises(ConfigError, match=f"OPENSEARCH_TIMEOUT must be a positive number of seconds, got '{value}'"):
        OpenSearchConfig.from_env({"OPENSEARCH_TIMEOUT": value})


def test_deploy_needs_the_embedding_token(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from tbhns_opensearch.cli import cli

    monkeypatch.delenv("TBHNS_EMBED_TOKEN", raising=False)
    result = CliRunner().invoke(cli, ["deploy", "all-MiniLM-L6-v2", "--port", "9298"])
    assert result.exit_code == 2 and "set TBHNS_EMBED_TOKEN" in result.output


def test_ml_settings_only_in_an_ml_node(tmp_path: Path) -> None:
    from tbhns_opensearch.cluster.node import ML_NODE_SETTINGS

    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "jvm.options").write_text("-Xms1g\n")
    for ml in (False, True):
        node = LocalNode(NodeConfig(http_port=9298, data_dir=tmp_path / f"node-{ml}", ml=ml))
        written = (node._write_config(home) / "opensearch.yml").read_text()
        assert all((key in written) == ml for key in ML_NODE_SETTINGS), written


def test_the_local_node_keeps_disk_watermarks_on_with_laptop_sized_limits(tmp_path: Path) -> None:
    from tbhns_opensearch.cluster.node import DISK_WATERMARKS

    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "jvm.options").write_text("-Xms1g\n")
    node = LocalNode(NodeConfig(http_port=9298, data_dir=tmp_path / "node"))
    written = (node._write_config(home) / "opensearch.yml").read_text()
    assert "threshold_enabled" not in written
    assert DISK_WATERMARKS == {
        "cluster.routing.allocation.disk.watermark.low": "500mb",
        "cluster.routing.allocation.disk.watermark.high": "300mb",
        "cluster.routing.allocation.disk.watermark.flood_stage": "100mb",
    }
    assert all(f'{key}: "{value}"' in written for key, value in DISK_WATERMARKS.items()), written


def test_a_relative_data_dir_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert NodeConfig(http_port=9298, data_dir=Path("rel")).node_dir == tmp_path / "rel"


def test_a_node_process_this_process_started_is_not_alive_once_it_exits() -> None:
    """A child that exited stays a zombie until reaped: `stop` used to wait its whole timeout (60 s) for it."""
    import signal
    import subprocess
    import time

    from tbhns_opensearch.cluster.node import _alive

    child = subprocess.Popen(["sleep", "60"])
    assert _alive(child.pid)
    os.kill(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while _alive(child.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child.pid)
