"""`tbhns opensearch start|stop|status`: the local node."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from tbhns_opensearch.cli.app import PORT_HELP, cli


@cli.group()
def opensearch() -> None:
    """Start, stop or check the local OpenSearch node (from Maven Central artifacts)."""


def _node(port: int, data_dir: Path | None, heap: str = "1g") -> Any:
    from tbhns_opensearch.cluster import LocalNode, NodeConfig

    return LocalNode(NodeConfig(http_port=port, data_dir=data_dir, heap=heap))


@opensearch.command("start")
@click.option("--port", default=9200, show_default=True, help=PORT_HELP)
@click.option("--data-dir", type=click.Path(path_type=Path), help="node data, logs and config [default: cache]")
@click.option("--heap", default="1g", show_default=True, help="JVM heap, e.g. 1g or 2g")
def opensearch_start(port: int, data_dir: Path | None, heap: str) -> None:
    """Fetch (once), start and wait for a green single-node cluster."""
    node = _node(port, data_dir, heap)
    seconds = node.start()
    click.echo(f"OpenSearch is green at {node.url} ({seconds:.1f}s); data in {node.config.node_dir}")


@opensearch.command("stop")
@click.option("--port", default=9200, show_default=True, help=PORT_HELP)
@click.option("--data-dir", type=click.Path(path_type=Path))
def opensearch_stop(port: int, data_dir: Path | None) -> None:
    """Stop the local node cleanly."""
    node = _node(port, data_dir)
    click.echo("stopped" if node.stop() else f"no local node running from {node.config.node_dir}")


@opensearch.command("status")
@click.option("--port", default=9200, show_default=True, help=PORT_HELP)
@click.option("--data-dir", type=click.Path(path_type=Path))
def opensearch_status(port: int, data_dir: Path | None) -> None:
    """Print the local node's pid and cluster health."""
    node = _node(port, data_dir)
    health = node.health()
    click.echo(json.dumps({"url": node.url, "pid": node.pid(), "health": health}, indent=2))
    if health is None:
        sys.exit(1)
