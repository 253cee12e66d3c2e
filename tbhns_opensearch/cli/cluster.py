"""`tbhns opensearch start|stop|status`: the local node."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from tbhns_opensearch.cli.app import cli, port_option
from tbhns_opensearch.cli.options import field_option

NODE = "tbhns_opensearch.cluster:NodeConfig."  # the `field_option` sources
DATA_DIR_OPTION = field_option("--data-dir", source=NODE + "data_dir", type=click.Path(path_type=Path))


@cli.group()
def opensearch() -> None:
    """Start, stop or check the local OpenSearch node (from Maven Central artifacts)."""


def _node(port: int, data_dir: Path | None, **settings: Any) -> Any:
    """The local node on `port` with `NodeConfig` `settings` (e.g. heap); secured when asked, or when its node
    dir was secured before."""
    from tbhns_opensearch.cluster import LocalNode, NodeConfig
    from tbhns_opensearch.cluster.node import with_stored_security

    return LocalNode(with_stored_security(NodeConfig(http_port=port, data_dir=data_dir, **settings)))


@opensearch.command("start")
@port_option()
@DATA_DIR_OPTION
@field_option("--heap", source=NODE + "heap")
@field_option(
    "--secure",
    source=NODE + "secure",
    is_flag=True,
    note="; prints the OPENSEARCH_* settings to export",
)
@field_option(
    "--ml",
    source=NODE + "ml",
    is_flag=True,
    note="; the plugin is a large download, once",
)
@click.option(
    "--nodes",
    default=1,
    show_default=True,
    type=click.IntRange(1, 9),
    help="nodes of one cluster: HTTP on PORT, PORT+1, ...; transport on PORT+100, ...; a data dir each",
)
def opensearch_start(port: int, data_dir: Path | None, heap: str, secure: bool, ml: bool, nodes: int) -> None:
    """Fetch (once), start and wait for a green cluster (one node unless --nodes)."""
    if nodes > 1:
        from tbhns_opensearch.cluster import LocalCluster

        if secure or ml or data_dir:
            raise click.UsageError(
                "--nodes > 1 takes neither --secure, --ml nor --data-dir (each node gets its own dir)"
            )
        cluster = LocalCluster(nodes, http_port=port, heap=heap)
        seconds = cluster.start()
        click.echo(
            f"OpenSearch cluster of {nodes} nodes is green at {cluster.url} ({seconds:.1f}s); "
            f"stop it with `tbhns opensearch stop --port {port} --nodes {nodes}`"
        )
        return
    node = _node(port, data_dir, heap=heap, secure=secure, ml=ml)
    first_secure_start = node.config.secure and node.credentials is None
    seconds = node.start()
    click.echo(f"OpenSearch is green at {node.url} ({seconds:.1f}s); data in {node.config.node_dir}")
    if node.credentials is not None:
        click.echo(f"admin credentials: {node.config.node_dir}/credentials.json (mode 0600)")
        if first_secure_start:  # the password is printed this once
            click.echo("to use this node, export:\n" + node.credentials.exports())


@opensearch.command("stop")
@port_option()
@DATA_DIR_OPTION
@click.option("--nodes", default=1, show_default=True, type=click.IntRange(1, 9), help="nodes of the cluster on PORT")
def opensearch_stop(port: int, data_dir: Path | None, nodes: int) -> None:
    """Stop the local node (or the --nodes of a local cluster) cleanly."""
    if nodes > 1:
        stopped = sum(_node(port + i, None).stop() for i in range(nodes))
        click.echo(f"stopped {stopped} of {nodes} nodes")
        return
    node = _node(port, data_dir)
    if (stale := node.stale_pid()) is not None:
        click.echo(
            f"the pid file {node.pid_file} was stale: pid {stale} is not an OpenSearch node of "
            f"{node.config.node_dir}; removed the file and left that process alone"
        )
    click.echo("stopped" if node.stop() else f"no local node running from {node.config.node_dir}")


@opensearch.command("status")
@port_option()
@DATA_DIR_OPTION
def opensearch_status(port: int, data_dir: Path | None) -> None:
    """Print the local node's pid and cluster health."""
    node = _node(port, data_dir)
    health = node.health()
    click.echo(json.dumps({"url": node.url, "pid": node.pid(), "health": health}, indent=2))
    if health is None:
        sys.exit(1)
