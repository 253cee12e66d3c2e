"""`tbhns bench run|ingest`: relevance, latency and throughput against the real cluster."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from tbhns_opensearch.cli.app import BACKEND_CHOICE, BATCH_SIZE_HELP, PORT_HELP, cli, cluster_for


@cli.group()
def bench() -> None:
    """Benchmarks: relevance and latency per mode, ingest throughput."""


@bench.command("run")
@click.argument("config_file", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "output_dir", type=click.Path(path_type=Path), help="[default: runs/bench/<config name>]")
@click.option("--port", default=9200, show_default=True, help=PORT_HELP + " (when OPENSEARCH_URL is unset)")
def bench_run(config_file: Path, output_dir: Path | None, port: int) -> None:
    """Run every system of CONFIG_FILE on the real cluster; write runs, report.json, summary.md and plots."""
    from tbhns_opensearch.bench.runner import BenchConfig, BenchRun

    output_dir = output_dir or Path("runs") / "bench" / config_file.stem
    config = BenchConfig.from_toml(config_file)
    config.check_encoders()  # before a node starts
    BenchRun(config, cluster_for(port), output_dir).run()
    click.echo((output_dir / "summary.md").read_text())
    click.echo(f"report: {output_dir}")


@bench.command("ingest")
@click.option("--dataset", default="icecat", show_default=True, help="public set to ingest")
@click.option("--data-dir", type=click.Path(path_type=Path))
@click.option("--limit", type=int, help="only the first N products")
@click.option("--encoder", default="all-MiniLM-L6-v2", show_default=True)
@click.option(
    "--backend",
    "backends",
    multiple=True,
    type=BACKEND_CHOICE,
    help="encoder runtime; repeat to compare them side by side [default: auto]",
)
@click.option("--batch-size", type=int, help=BATCH_SIZE_HELP)
@click.option("--alias", default="bench-ingest", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="also write the table as Markdown")
@click.option("--port", default=9200, show_default=True, help=PORT_HELP + " (when OPENSEARCH_URL is unset)")
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
