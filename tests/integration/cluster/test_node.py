"""The self-started node (or the configured cluster) is real OpenSearch with the pieces the project needs."""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from tbhns_opensearch.cli import cli
from tbhns_opensearch.cluster import LocalNode, NodeConfig, cluster_capabilities
from tbhns_opensearch.errors import ClusterError, TemplateError
from tbhns_opensearch.index.templates import create_index

pytestmark = pytest.mark.integration


def _started_by_this_suite(os_client) -> Path | None:  # type: ignore[no-untyped-def]
    """The node dir of the cluster's node when the suite started it itself (its pid file is here), else None."""
    settings = next(iter(os_client.nodes.info(node_id="_local", metric="settings")["nodes"].values()))["settings"]
    node_dir = Path(settings["path"]["logs"]).parent
    return node_dir if (node_dir / "node.pid").exists() else None


def test_cluster_has_knn_neural_search_and_analysis_common(os_client) -> None:
    capabilities = cluster_capabilities(os_client)
    assert capabilities.has_knn
    assert capabilities.has_hybrid
    assert "analysis-common" in capabilities.plugins
    assert os_client.cluster.health()["status"] in ("green", "yellow")


def test_english_analyzer_stems(os_client) -> None:
    tokens = os_client.indices.analyze(body={"analyzer": "english", "text": "Running Shoes"})["tokens"]
    assert [token["token"] for token in tokens] == ["run", "shoe"]


def test_second_node_on_a_used_port_fails_with_a_clear_message(tmp_path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ClusterError, match=f"port {port} on 127.0.0.1 is in use"):
            LocalNode(NodeConfig(http_port=port, data_dir=tmp_path)).start()


def test_stop_without_a_running_node_says_so(tmp_path) -> None:
    assert LocalNode(NodeConfig(http_port=9299, data_dir=tmp_path)).stop() is False


def test_stop_with_a_stale_pid_file_leaves_that_process_alone(tmp_path) -> None:
    stranger = subprocess.Popen(["sleep", "600"], start_new_session=True)  # a process group of its own
    try:
        (tmp_path / "node.pid").write_text(str(stranger.pid))
        result = CliRunner().invoke(cli, ["opensearch", "stop", "--port", "9299", "--data-dir", str(tmp_path)])
        assert result.exit_code == 0, result.output
        time.sleep(0.5)
        assert stranger.poll() is None, "stop killed a process that is no OpenSearch node"
        assert f"pid {stranger.pid} is not an OpenSearch node of {tmp_path}; removed the file" in result.output
        assert "stopped" not in result.output
        assert not (tmp_path / "node.pid").exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_the_session_node_is_known_by_its_pid_file_and_names_its_real_log(os_client, opensearch_config) -> None:
    node_dir = _started_by_this_suite(os_client)
    if node_dir is None:
        pytest.skip(f"the cluster at {opensearch_config.redacted_url()} was not started by this suite")
    node = LocalNode(NodeConfig(http_port=urlsplit(opensearch_config.url).port or 9200, data_dir=node_dir))
    assert node.stale_pid() is None
    assert node.pid() == int((node_dir / "node.pid").read_text())
    assert node.log_file.exists(), node.log_file


@pytest.mark.parametrize("engine", ["faiss", "nmslib"])
def test_a_knn_engine_without_its_native_library_is_refused_before_any_index(
    os_client, opensearch_config, index_config, engine: str, tmp_path: Path
) -> None:
    settings = next(iter(os_client.nodes.info(node_id="_local", metric="settings")["nodes"].values()))["settings"]
    knn = Path(settings["path"]["home"]) / "plugins" / "opensearch-knn"
    if not knn.is_dir() or any((knn / "lib").glob(f"libopensearchknn_{engine}*")):
        pytest.skip(f"this cluster's k-NN plugin is not on this machine or has {engine}: nothing to refuse")
    config = replace(index_config, engine=engine)
    with pytest.raises(
        TemplateError,
        match=f"k-NN engine '{engine}' cannot run on this cluster: .* no {engine} native "
        "library, .* would crash .*--engine lucene",
    ):
        create_index(os_client, config)
    assert not os_client.indices.exists_index_template(name=config.template_name)
    assert os_client.indices.get(index=f"{config.alias}-*") == {}
    catalog = tmp_path / "c5.jsonl"
    catalog.write_text('{"id": "1", "title": "Claw hammer"}\n')
    result = CliRunner(env={"OPENSEARCH_URL": opensearch_config.url}).invoke(
        cli, ["ingest", str(catalog), "--alias", config.alias, "--engine", engine]
    )
    assert isinstance(result.exception, TemplateError) and "--engine lucene" in str(result.exception), result.output
    assert os_client.indices.get(index=f"{config.alias}-*") == {}
    assert os_client.cluster.health()["status"] in ("green", "yellow")


def test_the_self_started_node_keeps_disk_watermarks_on(os_client, opensearch_config) -> None:
    if not _started_by_this_suite(os_client):
        pytest.skip(f"the cluster at {opensearch_config.redacted_url()} was not started by this suite")
    settings = os_client.cluster.get_settings(include_defaults=True, flat_settings=True)
    effective = {**settings["defaults"], **settings["persistent"], **settings["transient"]}
    disk = "cluster.routing.allocation.disk."
    assert effective[disk + "threshold_enabled"] == "true"
    assert [effective[f"{disk}watermark.{level}"] for level in ("low", "high", "flood_stage")] == [
        "500mb",
        "300mb",
        "100mb",
    ]
