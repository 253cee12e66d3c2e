"""Shared fixtures: one real OpenSearch node per session, one index per test, one encoder per session.

Cluster order: OPENSEARCH_URL → testcontainers' OpenSearch where a Docker engine answers → the node the
project starts itself from Maven Central artifacts. If none comes up, every integration test FAILS with
the reason; nothing is skipped.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator

import pytest

from tbhns_opensearch.cluster import LocalNode, NodeConfig, make_client
from tbhns_opensearch.cluster.node import default_cache_dir
from tbhns_opensearch.config import OpenSearchConfig
from tbhns_opensearch.encoder import Encoder
from tbhns_opensearch.errors import TbhnsError
from tbhns_opensearch.index.templates import IndexConfig

OPENSEARCH_IMAGE = "opensearchproject/opensearch:2.19.1"


def _docker_answers() -> bool:
    try:
        import docker

        return bool(docker.from_env(timeout=3).ping())
    except Exception:  # no client library, no socket, no engine: all mean "no Docker"
        return False


@pytest.fixture(scope="session")
def opensearch_config() -> Iterator[OpenSearchConfig]:
    """The cluster every integration test talks to."""
    env_config = OpenSearchConfig.from_env()
    if env_config.url:
        yield env_config
        return
    if _docker_answers():
        from testcontainers.opensearch import OpenSearchContainer

        with OpenSearchContainer(OPENSEARCH_IMAGE) as container:
            host, port = container.get_container_host_ip(), container.get_exposed_port(9200)
            yield OpenSearchConfig(url=f"http://{host}:{port}")
        return
    port = int(os.environ.get("TBHNS_TEST_PORT", "9250"))
    data_dir = default_cache_dir() / "test-node" / str(port)
    node = LocalNode(NodeConfig(http_port=port, data_dir=data_dir))
    if node.health() is not None:  # another suite's node: never wipe its data from under it
        pytest.fail(f"a node already answers on port {port}; set TBHNS_TEST_PORT to a free port", pytrace=False)
    shutil.rmtree(data_dir, ignore_errors=True)
    try:
        node.start()
    except TbhnsError as exc:
        pytest.fail(f"the local OpenSearch node did not start: {exc}", pytrace=False)
    yield OpenSearchConfig(url=node.url)
    node.stop()


@pytest.fixture(scope="session")
def os_client(opensearch_config: OpenSearchConfig):  # type: ignore[no-untyped-def]
    return make_client(opensearch_config)


@pytest.fixture(scope="session")
def encoder() -> Encoder:
    return Encoder()


@pytest.fixture
def index_config(os_client) -> Iterator[IndexConfig]:  # type: ignore[no-untyped-def]
    """A fresh alias per test; its indices and template are deleted afterwards."""
    config = IndexConfig(alias=f"test-{uuid.uuid4().hex[:12]}")
    yield config
    os_client.indices.delete(index=f"{config.alias}-*", ignore_unavailable=True)
    os_client.indices.delete_index_template(name=config.template_name, ignore=[404])
