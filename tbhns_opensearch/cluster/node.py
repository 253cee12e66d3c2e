"""A single-node OpenSearch the project starts on 127.0.0.1 from the Maven Central artifacts.

Example:
    >>> with LocalNode(NodeConfig(http_port=9250)) as node:  # doctest: +SKIP
    ...     print(node.url)
    http://127.0.0.1:9250
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tbhns_opensearch.cluster.artifacts import SECURITY_PLUGIN, install_home
from tbhns_opensearch.cluster.jdk import find_java_home
from tbhns_opensearch.cluster.security import Credentials, read_credentials, secure_config
from tbhns_opensearch.errors import ClusterError

CLUSTER_NAME = "tbhns-local"  # how `stop` recognizes a node of ours that lost its pid file


ML_NODE_SETTINGS = {
    "plugins.ml_commons.only_run_on_ml_node": False,  # a local node has no dedicated ML nodes
    "plugins.ml_commons.native_memory_threshold": 100,  # a busy shared box must not refuse to deploy
    "plugins.ml_commons.jvm_heap_memory_threshold": 100,
}


DISK_WATERMARKS = {  # free space, not a share: OpenSearch's 85/90/95% would stop a laptop with 50 GB still free
    "cluster.routing.allocation.disk.watermark.low": "500mb",  # no new replicas on the node
    "cluster.routing.allocation.disk.watermark.high": "300mb",  # shards move away (where there is another node)
    "cluster.routing.allocation.disk.watermark.flood_stage": "100mb",  # indices turn read-only, the cluster stays up
}


def default_cache_dir() -> Path:
    """TBHNS_CACHE_DIR, else a per-user cache; as root a world-traversable one, since the node runs unprivileged."""
    if os.environ.get("TBHNS_CACHE_DIR"):
        return Path(os.environ["TBHNS_CACHE_DIR"])
    if os.geteuid() == 0:
        return Path("/var/cache/tbhns-opensearch")
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tbhns-opensearch"


@dataclass(frozen=True)
class NodeConfig:
    """Settings of the self-started node."""

    http_port: int = field(default=9200, metadata={"help": "HTTP port of the local node on 127.0.0.1"})
    transport_port: int | None = field(default=None, metadata={"help": "transport port [default: HTTP port + 100]"})
    heap: str = field(default="1g", metadata={"help": "JVM heap, e.g. 1g or 2g (vectors live off-heap in Lucene)"})
    cache_dir: Path = field(
        default_factory=default_cache_dir, metadata={"help": "where OpenSearch is downloaded and assembled"}
    )
    data_dir: Path | None = field(
        default=None, metadata={"help": "node data, logs, config and pid [default: <cache dir>/nodes/<HTTP port>]"}
    )
    run_as: str = field(
        default="nobody",
        metadata={"help": "OpenSearch refuses to run as root: when root, the node runs as this user"},
    )
    start_timeout_s: float = field(default=180.0, metadata={"help": "seconds to wait for a green cluster"})
    secure: bool = field(
        default=False,
        metadata={"help": "TLS on HTTP and transport, and basic auth (the security plugin; certificates made here)"},
    )
    ml: bool = field(
        default=False,
        metadata={
            "help": "install ML Commons, for the encoder as a remote model (`tbhns deploy`) behind the `neural` "
            "query and a `text_embedding` ingest pipeline"
        },
    )
    node_name: str = field(default="tbhns-node", metadata={"help": "the node's name in its cluster"})
    cluster_transports: tuple[int, ...] = field(
        default=(), metadata={"help": "transport ports of every node of a multi-node cluster; (): a single node"}
    )

    def __post_init__(self) -> None:
        if not 1 <= self.http_port <= 65535:
            raise ClusterError(f"http_port must be 1-65535, got {self.http_port}")

    @property
    def node_dir(self) -> Path:
        """Absolute: the node runs in its home, where a relative `--data-dir` would name another folder."""
        return (self.data_dir or self.cache_dir / "nodes" / str(self.http_port)).absolute()

    @property
    def transport(self) -> int:
        return self.transport_port or self.http_port + 100


def with_stored_security(config: NodeConfig) -> NodeConfig:
    """`config`, secured when its node dir holds the credentials of an earlier `--secure` start."""
    return replace(config, secure=True) if read_credentials(config.node_dir) is not None else config


class LocalNode:
    """Start, query and stop the local node. Constructing it starts nothing."""

    def __init__(self, config: NodeConfig | None = None) -> None:
        self.config = config or NodeConfig()
        self._started_here = False

    @property
    def url(self) -> str:
        return f"{'https' if self.config.secure else 'http'}://127.0.0.1:{self.config.http_port}"

    @property
    def credentials(self) -> Credentials | None:
        """The secured node's URL, admin user, password and CA (None for an unsecured node)."""
        return read_credentials(self.config.node_dir) if self.config.secure else None

    @property
    def pid_file(self) -> Path:
        return self.config.node_dir / "node.pid"

    @property
    def log_file(self) -> Path:
        """The server log: OpenSearch names it after the cluster."""
        return self.config.node_dir / "logs" / f"{CLUSTER_NAME}.log"

    def pid(self) -> int | None:
        """The pid of a running node started from this node dir; else of the tbhns node that answers on this
        port (started with another data dir, or whose pid file is gone); else None. A cluster of anyone
        else's on the port, or a process the pid file names that is not this node, is never reported."""
        recorded = self._recorded_pid()
        if recorded is not None and self._is_this_node(recorded):
            return recorded
        return self._answering_pid()

    def stale_pid(self) -> int | None:
        """The pid in the pid file when it names no process of this node (the node died and the pid may now
        be anyone's); None when there is no pid file or it is current."""
        recorded = self._recorded_pid()
        return recorded if recorded is not None and not self._is_this_node(recorded) else None

    def _recorded_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _is_this_node(self, pid: int) -> bool:
        """Whether `pid` is this node dir's OpenSearch: on Linux, its command line runs OpenSearch with this
        node's config dir (`start` passes it in OPENSEARCH_PATH_CONF); elsewhere, the node on the port reports it."""
        if not Path("/proc/self").is_dir():
            return self._answering_pid() == pid
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
        except OSError:  # gone, or not ours to inspect
            return False
        runs_opensearch = any(
            arg == b"org.opensearch.bootstrap.OpenSearch" or arg.endswith(b"/bin/opensearch") for arg in args
        )  # the java process, or the script just before it execs java
        config_dirs = [entry.partition("=")[2] for entry in environ if entry.startswith("OPENSEARCH_PATH_CONF=")]
        return runs_opensearch and [Path(d).resolve() for d in config_dirs] == [
            (self.config.node_dir / "config").resolve()
        ]

    def _answering_pid(self) -> int | None:
        answer = self._get("/_nodes/_local/process")
        if answer is None:
            return None
        if answer.get("cluster_name") != CLUSTER_NAME:
            return None
        pids = [node.get("process", {}).get("id") for node in answer.get("nodes", {}).values()]
        return int(pids[0]) if len(pids) == 1 and pids[0] else None

    def health(self) -> dict[str, Any] | None:
        """The cluster health JSON, or None when nothing answers."""
        return self._get("/_cluster/health")

    def _get(self, path: str) -> dict[str, Any] | None:
        """GET `path` from the node (with the CA and the admin's basic auth when secured); None when it fails."""
        request = urllib.request.Request(self.url + path)
        context = None
        if (credentials := self.credentials) is not None:
            context = ssl.create_default_context(cafile=credentials.ca_certs)
            token = base64.b64encode(f"{credentials.user}:{credentials.password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=2, context=context) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def start(self, wait: bool = True) -> float:
        """Start the node (reusing one already running from this node dir); return seconds until green
        (`wait=False`: return once the process runs; a node of a cluster turns green only with its peers)."""
        began = time.monotonic()
        if self.pid() is not None and self._is_green():
            return 0.0
        _require_free_port(self.config.http_port)
        _require_free_port(self.config.transport)
        home = install_home(self.config.cache_dir, secure=self.config.secure, ml=self.config.ml)
        java_home = find_java_home()
        config_dir = self._write_config(home)
        env = {**os.environ, "OPENSEARCH_JAVA_HOME": str(java_home), "OPENSEARCH_PATH_CONF": str(config_dir)}
        env.pop("JAVA_TOOL_OPTIONS", None)
        user = self.config.run_as if os.geteuid() == 0 else None
        if user:
            _require_traversable(self.config.node_dir, user)
            _chown_tree(self.config.node_dir, user)
        with (self.config.node_dir / "stdout.log").open("ab") as out:
            process = subprocess.Popen(
                [str(home / "bin" / "opensearch")],
                env=env,
                cwd=self.config.node_dir,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                user=user,
            )
        self.pid_file.write_text(str(process.pid))
        self._started_here = True
        if wait:
            self._wait_for_green(process)
        return time.monotonic() - began

    def stop(self, timeout_s: float = 60.0) -> bool:
        """Stop the node cleanly (SIGTERM, then SIGKILL after `timeout_s`); False when none was running. A stale
        pid file (`stale_pid`) is removed and the process it names is left alone."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        kill = os.killpg if os.getpgid(pid) == pid else os.kill  # `start` makes the node a group leader
        kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    def __enter__(self) -> LocalNode:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._started_here:
            self.stop()

    def _is_green(self) -> bool:
        health = self.health()
        return bool(health) and health.get("status") in ("green", "yellow")

    def _wait_for_green(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.config.start_timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise ClusterError(
                    f"OpenSearch exited during start (code {process.returncode}): {self._last_error()}; "
                    f"full log: {self.config.node_dir / 'stdout.log'}"
                )
            if self._is_green():
                return
            time.sleep(0.5)
        self.stop()
        raise ClusterError(
            f"OpenSearch did not turn green within {self.config.start_timeout_s:.0f}s: {self._last_error()}; "
            f"raise NodeConfig.start_timeout_s or read {self.log_file}"
        )

    def _last_error(self) -> str:
        for log in (self.config.node_dir / "stdout.log", self.log_file):
            if log.exists():
                lines = log.read_text(errors="replace").splitlines()
                errors = [
                    line
                    for line in lines
                    if ("Exception" in line or "ERROR" in line) and not line.strip().startswith("at ")
                ]
                if errors or lines:
                    return (errors or lines)[-1].strip()[:400]
        return "no log written"

    def _discovery(self) -> dict[str, Any]:
        if not self.config.cluster_transports:
            return {"discovery.type": "single-node"}
        names = [f"{CLUSTER_NAME}-{i}" for i in range(len(self.config.cluster_transports))]
        return {
            "discovery.seed_hosts": [f"127.0.0.1:{port}" for port in self.config.cluster_transports],
            "cluster.initial_cluster_manager_nodes": names,
        }

    def _write_config(self, home: Path) -> Path:
        node_dir = self.config.node_dir
        config_dir = node_dir / "config"
        for sub in ("data", "logs"):
            (node_dir / sub).mkdir(parents=True, exist_ok=True)
        shutil.copytree(home / "config", config_dir, dirs_exist_ok=True)
        settings = {
            "cluster.name": CLUSTER_NAME,
            "node.name": self.config.node_name,
            **self._discovery(),
            "network.host": "127.0.0.1",
            "http.port": self.config.http_port,
            "transport.port": self.config.transport,
            "path.data": str(node_dir / "data"),
            "path.logs": str(node_dir / "logs"),
            **DISK_WATERMARKS,
            "action.auto_create_index": False,
        }
        if self.config.ml:
            settings |= ML_NODE_SETTINGS
        if self.config.secure:
            plugin_config = home / "plugins" / SECURITY_PLUGIN / "config"
            settings |= secure_config(config_dir, node_dir, plugin_config, self.url)[1]
        (config_dir / "opensearch.yml").write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in settings.items()))
        jvm_options = (home / "config" / "jvm.options").read_text()
        jvm_options = jvm_options.replace("=logs/", f"={node_dir}/logs/").replace(
            "file=logs/", f"file={node_dir}/logs/"
        )
        jvm_options = jvm_options.replace("HeapDumpPath=data", f"HeapDumpPath={node_dir}/data")
        (config_dir / "jvm.options").write_text(jvm_options)
        (config_dir / "jvm.options.d").mkdir(exist_ok=True)
        heap = f"-Xms{self.config.heap}\n-Xmx{self.config.heap}\n"
        (config_dir / "jvm.options.d" / "heap.options").write_text(heap)
        return config_dir


def _require_free_port(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise ClusterError(
                f"port {port} on 127.0.0.1 is in use; stop what listens there, choose another with --port, "
                "or point OPENSEARCH_URL at that cluster"
            ) from None


def _chown_tree(path: Path, user: str) -> None:
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ClusterError(
            f"user {user!r} does not exist; OpenSearch will not run as root, create it or set run_as"
        ) from None
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, d) for d in dirs), *(os.path.join(root, f) for f in files)]:
            os.chown(name, entry.pw_uid, entry.pw_gid)


def _require_traversable(path: Path, user: str) -> None:
    """As root the node runs as `user`, who must be able to reach `path` through every parent folder."""
    for parent in [*reversed(path.resolve().parents), path.resolve()]:
        if parent.exists() and not parent.stat().st_mode & 0o001 and parent.owner() != user:
            raise ClusterError(
                f"OpenSearch runs as {user!r} (it refuses root) but cannot enter {parent} (mode "
                f"{oct(parent.stat().st_mode & 0o777)}); choose a data dir outside it, e.g. under {default_cache_dir()}"
            )


def _alive(pid: int) -> bool:
    """Whether `pid` still runs; a node this process started is reaped once it exits (a zombie is not alive)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:  # not our child: another process started the node
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class LocalCluster:
    """`nodes` local nodes on loopback forming one cluster: node i serves HTTP on `http_port + i` and transport
    on `http_port + 100 + i`, with a data dir of its own (the default: `<cache>/nodes/<its http port>`).

    Example:
        >>> cluster = LocalCluster(3, http_port=9200, heap="512m")  # starts nothing yet
        >>> [node.config.http_port for node in cluster.nodes], cluster.nodes[2].config.node_name
        ([9200, 9201, 9202], 'tbhns-local-2')
    """

    def __init__(self, nodes: int, http_port: int = 9200, heap: str = "512m", cache_dir: Path | None = None) -> None:
        if nodes < 2:
            raise ClusterError(f"a cluster needs 2 or more nodes, got {nodes}; use LocalNode for one")
        transports = tuple(http_port + 100 + i for i in range(nodes))
        extra = {"cache_dir": cache_dir} if cache_dir else {}
        self.nodes = [
            LocalNode(
                NodeConfig(
                    http_port=http_port + i,
                    transport_port=transports[i],
                    heap=heap,
                    node_name=f"{CLUSTER_NAME}-{i}",
                    cluster_transports=transports,
                    **extra,
                )
            )
            for i in range(nodes)
        ]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self, timeout_s: float = 300.0) -> float:
        """Start every node, then wait until all have joined and the cluster is green; return the seconds."""
        began = time.monotonic()
        for node in self.nodes:
            node.start(wait=False)
        while time.monotonic() - began < timeout_s:
            health = self.nodes[0].health()
            if health and health.get("number_of_nodes") == len(self.nodes) and health.get("status") == "green":
                return time.monotonic() - began
            time.sleep(1.0)
        self.stop()
        raise ClusterError(
            f"the {len(self.nodes)} nodes did not form a green cluster within {timeout_s:.0f}s: "
            f"{self.nodes[0]._last_error()}"
        )

    def stop(self) -> int:
        """Stop every node; return how many were running."""
        return sum(node.stop() for node in self.nodes)
