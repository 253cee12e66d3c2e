"""The `tbhns` command: one short command per stage, each a thin wire to a module."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from tbhns_opensearch.errors import TbhnsError

_PORT_HELP = "HTTP port of the local node on 127.0.0.1"


def main() -> None:
    """Entry point: turn project errors into one clear line and exit code 2."""
    try:
        cli(standalone_mode=True)
    except TbhnsError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


@click.group()
def cli() -> None:
    """Taxonomy-based hard-negative sampling for personalized semantic product search on OpenSearch."""


# --- cluster -----------------------------------------------------------------------------------------------
@cli.group()
def opensearch() -> None:
    """Start, stop or check the local OpenSearch node (from Maven Central artifacts)."""


def _node(port: int, data_dir: Path | None, heap: str = "1g") -> Any:
    from tbhns_opensearch.cluster import LocalNode, NodeConfig

    return LocalNode(NodeConfig(http_port=port, data_dir=data_dir, heap=heap))


@opensearch.command("start")
@click.option("--port", default=9200, show_default=True, help=_PORT_HELP)
@click.option("--data-dir", type=click.Path(path_type=Path), help="node data, logs and config [default: cache]")
@click.option("--heap", default="1g", show_default=True, help="JVM heap, e.g. 1g or 2g")
def opensearch_start(port: int, data_dir: Path | None, heap: str) -> None:
    """Fetch (once), start and wait for a green single-node cluster."""
    node = _node(port, data_dir, heap)
    seconds = node.start()
    click.echo(f"OpenSearch is green at {node.url} ({seconds:.1f}s); data in {node.config.node_dir}")


@opensearch.command("stop")
@click.option("--port", default=9200, show_default=True, help=_PORT_HELP)
@click.option("--data-dir", type=click.Path(path_type=Path))
def opensearch_stop(port: int, data_dir: Path | None) -> None:
    """Stop the local node cleanly."""
    node = _node(port, data_dir)
    click.echo("stopped" if node.stop() else f"no local node running from {node.config.node_dir}")


@opensearch.command("status")
@click.option("--port", default=9200, show_default=True, help=_PORT_HELP)
@click.option("--data-dir", type=click.Path(path_type=Path))
def opensearch_status(port: int, data_dir: Path | None) -> None:
    """Print the local node's pid and cluster health."""
    node = _node(port, data_dir)
    health = node.health()
    click.echo(json.dumps({"url": node.url, "pid": node.pid(), "health": health}, indent=2))
    if health is None:
        sys.exit(1)


def _cluster(port: int) -> Any:
    """OPENSEARCH_URL's cluster, else the local node on `port` (started when not running)."""
    from tbhns_opensearch.cluster import NodeConfig, resolve_cluster
    from tbhns_opensearch.config import OpenSearchConfig

    return resolve_cluster(OpenSearchConfig.from_env(), NodeConfig(http_port=port))


# --- ingest ------------------------------------------------------------------------------------------------
@cli.command()
@click.argument("catalog", required=False, type=click.Path(path_type=Path))
@click.option("--dataset", help="read a public set by name instead (icecat, amazon-uk-toys, flipkart, instacart, wands)")
@click.option("--data-dir", type=click.Path(path_type=Path), help="folder of --dataset [default: ../shared/data/<set>]")
@click.option("--mapping", "mapping_file", type=click.Path(exists=True, path_type=Path), help="JSON column mapping")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "tsv", "parquet"]), help="[default: from suffix]")
@click.option("--encoder", default="all-MiniLM-L6-v2", show_default=True, help="sentence-transformers path or name")
@click.option("--device", default="cpu", show_default=True)
@click.option("--batch-size", default=32, show_default=True, help="encoder batch size")
@click.option("--alias", default="products", show_default=True, help="index alias searches use")
@click.option("--rebuild", is_flag=True, help="fill a new index and swap the alias at the end (zero downtime)")
@click.option("--engine", default="lucene", show_default=True, type=click.Choice(["lucene", "faiss", "nmslib"]))
@click.option("--space-type", default="cosinesimil", show_default=True)
@click.option("--m", "hnsw_m", default=16, show_default=True, help="HNSW graph degree")
@click.option("--ef-construction", default=128, show_default=True)
@click.option("--ef-search", default=100, show_default=True)
@click.option("--rejects", type=click.Path(path_type=Path), help="JSONL of rejected records [default: <catalog>.rejects.jsonl]")
@click.option("--port", default=9200, show_default=True, help=_PORT_HELP + " (when OPENSEARCH_URL is unset)")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
def ingest(catalog: Path | None, dataset: str | None, data_dir: Path | None, mapping_file: Path | None, fmt: str | None,
           encoder: str, device: str, batch_size: int, alias: str, rebuild: bool, engine: str, space_type: str,
           hnsw_m: int, ef_construction: int, ef_search: int, rejects: Path | None, port: int, as_json: bool) -> None:  # fmt: skip
    """Read CATALOG (JSONL, CSV, Parquet), encode products and bulk-write them behind the alias."""
    from tbhns_opensearch.catalog import ColumnMapping, read_catalog
    from tbhns_opensearch.catalog.adapters import read_dataset
    from tbhns_opensearch.cluster import make_client
    from tbhns_opensearch.encoder import Encoder
    from tbhns_opensearch.index.ingest import IngestConfig, ingest_products
    from tbhns_opensearch.index.templates import IndexConfig

    if (catalog is None) == (dataset is None):
        raise click.UsageError("give either a CATALOG file or --dataset NAME")
    rejects = rejects or Path(f"{catalog or dataset}.rejects.jsonl")
    if dataset:
        stream = read_dataset(dataset, data_dir, rejects_path=rejects)
    else:
        mapping = ColumnMapping.from_dict(json.loads(mapping_file.read_text())) if mapping_file else None
        stream = read_catalog(catalog, mapping, fmt, rejects_path=rejects)
    index_config = IndexConfig(alias=alias, engine=engine, space_type=space_type, m=hnsw_m,
                               ef_construction=ef_construction, ef_search=ef_search)  # fmt: skip
    client = make_client(_cluster(port))
    summary = ingest_products(
        client, stream, Encoder(encoder, device=device, batch_size=batch_size), index_config, IngestConfig(rebuild=rebuild)
    )
    report = {
        "index": summary.index,
        "alias": alias,
        "read": stream.counts.read,
        "indexed": summary.indexed,
        "rejected": stream.counts.rejected + len(summary.failures),
        "seconds": round(summary.seconds, 2),
        "products_per_s": round(summary.products_per_s, 1),
        "rejects_file": str(rejects) if stream.counts.rejected else None,
    }
    if not stream.counts.rejected:
        rejects.unlink(missing_ok=True)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(" ".join(f"{key}={value}" for key, value in report.items()))
    for reject in stream.rejects[:20]:
        click.echo(f"rejected {reject}", err=True)
    for failure in summary.failures[:20]:
        click.echo(f"not indexed {failure['id']}: {failure['error']}", err=True)
    if report["rejected"]:
        sys.exit(1)


# --- search ------------------------------------------------------------------------------------------------
@cli.command()
@click.argument("query")
@click.option("--mode", default="bm25", show_default=True, help="bm25 or semantic")
@click.option("--k", default=10, show_default=True, help="number of hits")
@click.option("--encoder", default="all-MiniLM-L6-v2", show_default=True)
@click.option("--alias", default="products", show_default=True)
@click.option("--category", help="taxonomy path prefix, levels separated by '>'")
@click.option("--port", default=9200, show_default=True, help=_PORT_HELP + " (when OPENSEARCH_URL is unset)")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
def search(query: str, mode: str, k: int, encoder: str, alias: str, category: str | None, port: int, as_json: bool) -> None:
    """Print the top hits for QUERY."""
    from rich.console import Console
    from rich.table import Table

    from tbhns_opensearch.query.builders import Filters
    from tbhns_opensearch.query.service import SearchClient

    filters = Filters(category=tuple(part.strip() for part in category.split(">"))) if category else None
    response = SearchClient(_cluster(port), index=alias, encoder=encoder).search(query, mode=mode, k=k, filters=filters)
    if as_json:
        click.echo(json.dumps(asdict(response), indent=2, default=str))
        return
    table = Table(title=f"{mode}: {query!r} ({response.took_ms:.0f} ms)")
    for column in ("rank", "id", "score", "title", "category path"):
        table.add_column(column)
    for rank, hit in enumerate(response.hits, start=1):
        table.add_row(str(rank), hit.id, f"{hit.score:.3f}", hit.title[:70], " > ".join(hit.category_path))
    Console().print(table)


# --- benchmark ---------------------------------------------------------------------------------------------
@cli.group()
def bench() -> None:
    """Benchmarks: relevance and latency per mode, ingest throughput."""


@bench.command("ingest")
@click.option("--dataset", default="icecat", show_default=True, help="public set to ingest")
@click.option("--data-dir", type=click.Path(path_type=Path))
@click.option("--limit", type=int, help="only the first N products")
@click.option("--encoder", default="all-MiniLM-L6-v2", show_default=True)
@click.option("--batch-size", default=32, show_default=True)
@click.option("--alias", default="bench-ingest", show_default=True)
@click.option("--port", default=9200, show_default=True, help=_PORT_HELP + " (when OPENSEARCH_URL is unset)")
def bench_ingest(dataset: str, data_dir: Path | None, limit: int | None, encoder: str, batch_size: int, alias: str, port: int) -> None:
    """Encode-only vs full-ingest throughput (products/s) on the same products, in one run."""
    from itertools import islice

    from tbhns_opensearch.bench.throughput import measure_ingest_throughput
    from tbhns_opensearch.catalog.adapters import read_dataset
    from tbhns_opensearch.cluster import make_client
    from tbhns_opensearch.encoder import Encoder
    from tbhns_opensearch.index.templates import IndexConfig

    products = list(islice(read_dataset(dataset, data_dir), limit))
    result = measure_ingest_throughput(
        make_client(_cluster(port)), products, Encoder(encoder, batch_size=batch_size), IndexConfig(alias=alias)
    )
    click.echo(json.dumps({**asdict(result), "ratio": round(result.ratio, 3)}, indent=2))
