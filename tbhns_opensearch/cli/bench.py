"""`tbhns bench run|ingest`: relevance, latency and throughput against the real cluster."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict
from pathlib import Path

import click

from tbhns_opensearch.cli.app import BACKEND_CHOICE, BATCH_SIZE_HELP, cli, cluster_for, port_option
from tbhns_opensearch.config import DEFAULT_ENCODER


@cli.group()
def bench() -> None:
    """Benchmarks: relevance and latency per mode, ingest throughput."""


class ConfigKeysCommand(click.Command):
    """A command whose --help ends with the keys of a benchmark config: each with the help and default of its
    field (`bench.runner.BenchConfig`, `BenchSystem` and `UsersSpec`), read when the help is shown."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from tbhns_opensearch.bench.runner import BenchConfig, BenchSystem, UsersSpec

        for title, config in (("Config keys", BenchConfig), ("[[systems]]", BenchSystem), ("[users]", UsersSpec)):
            with formatter.section(title):
                formatter.write_dl([(key.name, _key_help(key)) for key in dataclasses.fields(config)])


def _key_help(key: dataclasses.Field) -> str:
    """A config key's help and its default as TOML writes it (none when the key is required, unset by default
    or its help says the default)."""
    help_text = key.metadata.get("help", "")
    if key.default in (dataclasses.MISSING, None) or "[default:" in help_text:
        return help_text
    default = list(key.default) if isinstance(key.default, tuple) else key.default
    return f"{help_text}  [default: {json.dumps(default)}]"


@bench.command("run", cls=ConfigKeysCommand)
@click.argument("config_file", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "output_dir", type=click.Path(path_type=Path), help="[default: runs/bench/<config name>]")
@port_option(" (when OPENSEARCH_URL is unset)")
def bench_run(config_file: Path, output_dir: Path | None, port: int) -> None:
    """Run every system of CONFIG_FILE on the real cluster; write runs, report.json, summary.md and plots."""
    from tbhns_opensearch.bench.runner import BenchConfig, BenchRun

    output_dir = output_dir or Path("runs") / "bench" / config_file.stem
    config = BenchConfig.from_toml(config_file)
    config.check_encoders()  # before a node starts: every model directory exists,
    config.check_split()  # and an evaluated split says where training held it out
    BenchRun(config, cluster_for(port), output_dir).run()
    click.echo((output_dir / "summary.md").read_text())
    click.echo(f"report: {output_dir}")


@bench.command("ingest")
@click.option("--dataset", default="icecat", show_default=True, help="public set to ingest")
@click.option("--data-dir", type=click.Path(path_type=Path), help="folder of --dataset [default: ../shared/data/<set>]")
@click.option("--limit", type=int, help="only the first N products")
@click.option("--encoder", default=DEFAULT_ENCODER, show_default=True, help="sentence-transformers path or name")
@click.option(
    "--backend",
    "backends",
    multiple=True,
    type=BACKEND_CHOICE,
    help="encoder runtime; repeat to compare them side by side [default: auto]",
)
@click.option("--batch-size", type=int, help=BATCH_SIZE_HELP)
@click.option(
    "--alias", default="bench-ingest", show_default=True, help="index alias the run writes (rebuilt each run)"
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="also write the table as Markdown")
@port_option(" (when OPENSEARCH_URL is unset)")
def bench_ingest(
    dataset: str,
    data_dir: Path | None,
    limit: int | None,
    encoder: str,
    backends: tuple[str, ...],
    batch_size: int | None,
    alias: str,
    out: Path | None,
    port: int,
) -> None:
    """Encode-only vs full-ingest throughput (products/s) on the same products, per runtime, in one run.

    Example: tbhns bench ingest --encoder runs/encoders/minilm --backend torch --backend onnx --backend onnx-int8
    """
    import sys
    from itertools import islice

    from tbhns_opensearch.bench.throughput import compare_backends, throughput_markdown
    from tbhns_opensearch.catalog.adapters import read_dataset
    from tbhns_opensearch.cluster import make_client
    from tbhns_opensearch.index.templates import IndexConfig

    products = list(islice(read_dataset(dataset, data_dir), limit))
    results = compare_backends(
        make_client(cluster_for(port)), products, encoder, backends or ("auto",), IndexConfig(alias=alias), batch_size
    )
    click.echo(json.dumps([{**asdict(r), "ratio": round(r.ratio, 3)} for r in results], indent=2))
    if out:
        out.write_text(throughput_markdown(results, dataset, encoder, "tbhns " + " ".join(sys.argv[1:])))
