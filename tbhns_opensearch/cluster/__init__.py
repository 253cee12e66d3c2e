"""The OpenSearch cluster: a connection from the environment, or a local node the project starts itself."""

from tbhns_opensearch.cluster.connection import ClusterCapabilities, cluster_capabilities, make_client, resolve_cluster
from tbhns_opensearch.cluster.node import LocalCluster, LocalNode, NodeConfig

__all__ = [
    "ClusterCapabilities",
    "LocalCluster",
    "LocalNode",
    "NodeConfig",
    "cluster_capabilities",
    "make_client",
    "resolve_cluster",
]
