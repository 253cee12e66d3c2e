"""The self-started node (or the configured cluster) is real OpenSearch with the pieces the project needs."""

from __future__ import annotations

import socket

import pytest

from tbhns_opensearch.cluster import LocalNode, NodeConfig, cluster_capabilities
from tbhns_opensearch.errors import ClusterError

pytestmark = pytest.mark.integration


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
