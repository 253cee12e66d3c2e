"""Clients for the configured cluster, and what that cluster can do."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from opensearchpy import JSONSerializer, OpenSearch
from opensearchpy.exceptions import HTTP_EXCEPTIONS, SerializationError, TransportError

from tbhns_opensearch.cluster.node import LocalNode, NodeConfig, with_stored_security
from tbhns_opensearch.config import ClusterAuth, OpenSearchConfig
from tbhns_opensearch.errors import ClusterError, ConfigError


class FastJSONSerializer(JSONSerializer):
    """opensearch-py's JSON serializer on orjson: numpy arrays are written directly, float32 ones in their
    shortest exact form (about 12 bytes a component instead of 20), and a bulk body of 500 product vectors is
    encoded some 30x faster than with the standard library. Types orjson lacks fall back to opensearch-py's.

    Example:
        >>> import numpy as np
        >>> FastJSONSerializer().dumps({"embedding": np.asarray([0.1, -2.5], dtype=np.float32)})
        '{"embedding":[0.1,-2.5]}'
    """

    _OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS

    def dumps(self, data: Any) -> str:
        if isinstance(data, str):
            return data
        try:
            return orjson.dumps(data, default=self.default, option=self._OPTIONS).decode("utf-8")
        except (TypeError, orjson.JSONEncodeError) as exc:
            raise SerializationError(data, exc) from exc

    def loads(self, s: str) -> Any:
        try:
            return orjson.loads(s)
        except orjson.JSONDecodeError as exc:
            raise SerializationError(s, exc) from exc


def is_loopback(url: str) -> bool:
    """Whether `url` names this machine (localhost, 127.0.0.0/8 or ::1).

    Example:
        >>> is_loopback("http://127.0.0.1:9200"), is_loopback("https://search.example.com")
        (True, False)
    """
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def msearch_item(response: dict[str, Any]) -> dict[str, Any]:
    """One `msearch` item's response; an item that failed raises the TransportError (NotFoundError, ...) that
    `client.search` would have raised for it alone.

    Example:
        >>> msearch_item({"hits": {"hits": []}, "status": 200})["hits"]
        {'hits': []}
        >>> msearch_item({"error": {"type": "index_not_found_exception"}, "status": 404})
        Traceback (most recent call last):
        opensearchpy.exceptions.NotFoundError: NotFoundError(404, 'index_not_found_exception')
    """
    if "error" not in response:
        return response
    status, error = int(response.get("status", 500)), response["error"]
    raise HTTP_EXCEPTIONS.get(status, TransportError)(
        status, error.get("type", error) if isinstance(error, dict) else error, response
    )


def _basic_auth(config: OpenSearchConfig) -> tuple[str, str] | None:
    """The user and password pair, or None for a cluster without security."""
    return (config.user, config.password) if config.user is not None and config.password is not None else None


def _sigv4_auth(config: OpenSearchConfig) -> Any:
    """opensearch-py's SigV4 signer for the urllib3 connection that `make_client` uses, with credentials from
    botocore's usual chain (environment, AWS_PROFILE and the shared files, SSO, web identity, container or
    instance role). The signer takes a frozen copy of them for each request, so expiring ones are refreshed.
    """
    try:
        import botocore.session
        from botocore.exceptions import BotoCoreError
    except ImportError:
        raise ConfigError(
            "OPENSEARCH_AUTH=sigv4 needs botocore, which is not installed: pip install 'tbhns-opensearch[aws]'"
        ) from None
    from opensearchpy import Urllib3AWSV4SignerAuth

    try:
        credentials = botocore.session.Session().get_credentials()
    except BotoCoreError as exc:  # a named profile that is missing, half a key pair ...
        raise ConfigError(f"OPENSEARCH_AUTH=sigv4 could not read the AWS credentials: {exc}") from None
    if credentials is None:
        raise ConfigError(
            "OPENSEARCH_AUTH=sigv4 found no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(and AWS_SESSION_TOKEN for temporary ones) or AWS_PROFILE, or run under an IAM role"
        )
    return Urllib3AWSV4SignerAuth(credentials, config.aws_region, config.aws_service)


_AUTH: dict[ClusterAuth, Callable[[OpenSearchConfig], Any]] = {
    ClusterAuth.BASIC: _basic_auth,
    ClusterAuth.SIGV4: _sigv4_auth,
}
"""What `make_client` passes as `http_auth` for each OPENSEARCH_AUTH: a (user, password) pair, a request signer
or None."""


def make_client(config: OpenSearchConfig) -> OpenSearch:
    """An opensearch-py client for `config.url`; constructing it opens no connection. Bodies are gzipped to
    remote hosts only (unless `config.http_compress` says otherwise): on loopback, compressing a bulk request
    of vectors costs more CPU than the node's indexing of it. With `config.auth` sigv4 every request (retries
    included) is signed for AWS at the moment it is sent, over the body as sent (gzipped or not).

    Example:
        >>> make_client(OpenSearchConfig(url="http://127.0.0.1:9200"))  # doctest: +ELLIPSIS
        <OpenSearch([{'host': '127.0.0.1', 'port': 9200}])>
    """
    if not config.url:
        raise ClusterError("no cluster URL: set OPENSEARCH_URL or start the local node with `tbhns opensearch start`")
    return OpenSearch(
        hosts=[config.url],
        http_auth=_AUTH[config.auth](config),
        use_ssl=config.url.startswith("https://"),
        verify_certs=config.verify_certs,
        ssl_show_warn=config.verify_certs,
        ca_certs=config.ca_certs,
        timeout=config.timeout_s,
        max_retries=3,
        retry_on_timeout=True,
        retry_on_status=(502, 503, 504),
        http_compress=config.http_compress if config.http_compress is not None else not is_loopback(config.url),
        serializer=FastJSONSerializer(),
        pool_maxsize=config.pool_maxsize,
    )


def resolve_cluster(config: OpenSearchConfig, node: NodeConfig | None = None, start: bool = True) -> OpenSearchConfig:
    """`config` when it names a cluster (OPENSEARCH_URL); else the local node, started if it is not running
    and `start` (commands that only read, such as search, pass False: an empty new node answers nothing)."""
    if config.url:
        return config
    local = LocalNode(with_stored_security(node or NodeConfig()))  # a --secure node: its own URL and credentials
    if local.health() is None:
        if not start:
            raise ClusterError(
                f"no OpenSearch node answers at {local.url}; start one with `tbhns opensearch start "
                f"--port {local.config.http_port}` or set OPENSEARCH_URL to your cluster"
            )
        local.start()
    credentials = local.credentials
    if credentials is None:
        return OpenSearchConfig(url=local.url, timeout_s=config.timeout_s)
    return OpenSearchConfig(
        url=credentials.url,
        user=credentials.user,
        password=credentials.password,
        ca_certs=credentials.ca_certs,
        timeout_s=config.timeout_s,
    )


@dataclass(frozen=True)
class ClusterCapabilities:
    """What the connected cluster offers; decides server- or client-side hybrid and the analyzer."""

    version: str
    plugins: frozenset[str]

    @property
    def has_knn(self) -> bool:
        return "opensearch-knn" in self.plugins

    @property
    def has_hybrid(self) -> bool:
        """neural-search gives the `hybrid` query and the normalization search processor."""
        return "opensearch-neural-search" in self.plugins

    @property
    def has_rrf(self) -> bool:
        """The score-ranker-processor (RRF) arrived in neural-search 2.19."""
        major, minor = (int(part) for part in self.version.split(".")[:2])
        return self.has_hybrid and (major, minor) >= (2, 19)


def cluster_capabilities(client: OpenSearch) -> ClusterCapabilities:
    """Read the version and installed plugins (the modules of analysis-common included)."""
    info = client.info()
    nodes = client.nodes.info(metric="plugins")["nodes"]
    names = {entry["name"] for node in nodes.values() for entry in node.get("plugins", []) + node.get("modules", [])}
    return ClusterCapabilities(version=info["version"]["number"], plugins=frozenset(names))


NATIVE_KNN_ENGINES = ("faiss", "nmslib")
"""k-NN engines in JNI libraries (`<home>/plugins/opensearch-knn/lib/libopensearchknn_<engine>*`); lucene is Java."""


def knn_engine_gap(client: OpenSearch, engine: str) -> str | None:
    """Why the cluster cannot run k-NN `engine`, or None. A node lacking the engine's native library dies (its
    JVM, not the request) on the first segment of an index using it, and again on each restart; the k-NN zip on
    Maven Central, which the self-started node runs, has no native library. A node whose home is not on this
    machine (a remote cluster, a container) cannot be inspected and is trusted to have them, as distributions do.

    Example:
        >>> knn_engine_gap(client, "faiss")  # doctest: +SKIP
        "node tbhns-node's k-NN plugin (/var/cache/.../plugins/opensearch-knn) has no faiss native library"
    """
    if engine not in NATIVE_KNN_ENGINES:
        return None
    nodes = client.nodes.info(metric="settings", filter_path="nodes.*.name,nodes.*.settings.path.home")["nodes"]
    for node in nodes.values():
        plugin = Path(node["settings"]["path"]["home"]) / "plugins" / "opensearch-knn"
        if plugin.is_dir() and not any((plugin / "lib").glob(f"libopensearchknn_{engine}*")):
            return f"node {node['name']}'s k-NN plugin ({plugin}) has no {engine} native library"
    return None
