"""The `tbhns` command: one small module per stage, each a thin wire to the package (`app` holds the group).

Example:
    >>> sorted(cli.commands)[:3]
    ['bench', 'deploy', 'export']
"""

from tbhns_opensearch.cli import (  # noqa: F401 (registers)
    bench,
    cluster,
    deploy,
    export,
    ingest,
    queries,
    search,
    taxonomy,
    train,
    users,
)
from tbhns_opensearch.cli.app import cli, main

__all__ = ["cli", "main"]
