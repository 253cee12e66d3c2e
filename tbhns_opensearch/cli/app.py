"""The `tbhns` group, its entry point (one line per failure, exit codes) and the helpers commands share."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from tbhns_opensearch.cli.options import field_option
from tbhns_opensearch.errors import ClusterError, TbhnsError

# NodeConfig.http_port's help, for the --port options that `port_option` does not make yet (bench, train)
PORT_HELP = "HTTP port of the local node on 127.0.0.1"
EMBED_TOKEN_ENV = "TBHNS_EMBED_TOKEN"  # bearer token of `tbhns serve`'s /embed, which `tbhns deploy` hands the cluster
BACKEND_CHOICE = click.Choice(
    ["auto", "torch", "torch-bf16", "onnx", "onnx-int8"]
)  # encoder.CHOICES, without importing numpy
BACKEND_OPTION = click.option(
    "--backend",
    default="auto",
    show_default=True,
    type=BACKEND_CHOICE,
    help="encoder runtime: auto = onnx when the encoder directory has onnx/model.onnx (`tbhns export`), else torch; "
    "when encoding a catalog, torch-bf16 first on a CPU with AMX or AVX-512 BF16; "
    "onnx-int8 only where export measured it within tolerance of fp32",
)
DEVICE_OPTION = field_option(
    "--device", source="tbhns_opensearch.encoder:Encoder.device", help="where the encoder runs, e.g. cpu or cuda"
)
BATCH_SIZE_HELP = "texts per encoder batch [default: 128 for torch-bf16, else 32]"  # encoder.DEFAULT_BATCH_SIZES


EXIT_CODES = """Exit codes: 0 done (all records indexed), 1 some records rejected, 2 bad usage or input,
3 the cluster failed or could not be reached, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM)."""
INTERRUPTED = 130  # 128 + SIGINT, as shells report it
TERMINATED = 143  # 128 + SIGTERM


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so a command cleans up as on Ctrl-C (a half index is deleted)."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def main() -> None:
    """Entry point: every failure is one line on stderr, never a traceback, with the exit code of `EXIT_CODES`."""
    from opensearchpy.exceptions import ImproperlyConfigured, OpenSearchException

    signal.signal(signal.SIGTERM, _terminate)
    try:
        cli(standalone_mode=False)
    except click.exceptions.Exit as exc:  # --help, --version
        sys.exit(exc.exit_code)
    except click.ClickException as exc:  # bad usage: click's own message and exit code 2
        exc.show()
        sys.exit(exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        click.echo("interrupted: nothing half-done was published; rerun the command to finish", err=True)
        sys.exit(INTERRUPTED)
    except Terminated:
        click.echo("terminated: nothing half-done was published; rerun the command to finish", err=True)
        sys.exit(TERMINATED)
    except TbhnsError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(3 if isinstance(exc, ClusterError) or isinstance(exc.__cause__, OpenSearchException) else 2)
    except ImproperlyConfigured as exc:
        click.echo(f"error: the OpenSearch settings are invalid ({exc}); check the OPENSEARCH_* variables", err=True)
        sys.exit(2)
    except OpenSearchException as exc:  # the URL stays out: it may carry credentials
        status = getattr(exc, "status_code", None)
        click.echo(
            f"error: the cluster failed ({type(exc).__name__}"
            f"{f', status {status}' if isinstance(status, int) else ''}); "
            "check that it is running and that OPENSEARCH_URL names it",
            err=True,
        )
        sys.exit(3)


@click.group(epilog=EXIT_CODES)
def cli() -> None:
    """Taxonomy-based hard-negative sampling for personalized semantic product search on OpenSearch."""


def cluster_for(port: int, start: bool = True) -> Any:
    """OPENSEARCH_URL's cluster, else the local node on `port` (started when not running, if `start`)."""
    from tbhns_opensearch.cluster import NodeConfig, resolve_cluster
    from tbhns_opensearch.config import OpenSearchConfig

    return resolve_cluster(OpenSearchConfig.from_env(), NodeConfig(http_port=port), start=start)


def port_option(note: str = "") -> Callable[[Any], Any]:
    """`--port`: the local node's HTTP port, default and help from `NodeConfig.http_port`, then `note`."""
    return field_option("--port", source="tbhns_opensearch.cluster:NodeConfig.http_port", note=note)


def catalog_source(command: Callable[..., None]) -> Callable[..., None]:
    """CATALOG file or --dataset NAME (with --data-dir): the products a command reads."""
    command = click.option(
        "--data-dir", type=click.Path(path_type=Path), help="folder of --dataset [default: ../shared/data/<set>]"
    )(command)
    command = click.option("--dataset", help="a public set by name instead (homedepot, amazon-uk-toys, icecat, ...)")(
        command
    )
    return click.argument("catalog", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))(
        command
    )


def catalog_products(catalog: Path | None, dataset: str | None, data_dir: Path | None) -> list[Any]:
    from tbhns_opensearch.catalog import read_catalog
    from tbhns_opensearch.catalog.adapters import read_dataset

    if (catalog is None) == (dataset is None):
        raise click.UsageError("give either a CATALOG file or --dataset NAME")
    return list(read_dataset(dataset, data_dir) if dataset else read_catalog(catalog))
