"""The `tbhns` command: one short command per stage, each a thin wire to a module."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import click

from tbhns_opensearch.errors import ClusterError, TbhnsError

_PORT_HELP = "HTTP port of the local node on 127.0.0.1"


EXIT_CODES = """Exit codes: 0 done (all records indexed), 1 some records rejected, 2 bad usage or input,
3 the cluster failed or could not be reached."""


def main() -> None:
    """Entry point: every failure is one line on stderr, never a traceback, with the exit code of `EXIT_CODES`."""
    from opensearchpy.exceptions import ImproperlyConfigured, OpenSearchException, TransportError

    try:
        cli(standalone_mode=True)
    except TbhnsError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(3 if isinstance(exc, ClusterError) or isinstance(exc.__cause__, TransportError) else 2)
    except ImproperlyConfigured as exc:
        click.echo(f"error: the OpenSearch settings are invalid ({exc}); check the OPENSEARCH_* variables", err=True)
        sys.exit(2)
    except OpenSearchException as exc:  # the URL stays out: it may carry credentials
        status = getattr(exc, "status_code", None)
        click.echo(f"error: the cluster failed ({type(exc).__name__}{f', status {status}' if isinstance(status, int) else ''}); "
                   "check that it is running and that OPENSEARCH_URL names it", err=True)  # fmt: skip
        sys.exit(3)


@click.group(epilog=EXIT_CODES)
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


def _cluster(port: int, start: bool = True) -> Any:
    """OPENSEARCH_URL's cluster, else the local node on `port` (started when not running, if `start`)."""
    from tbhns_opensearch.cluster import NodeConfig, resolve_cluster
    from tbhns_opensearch.config import OpenSearchConfig

    return resolve_cluster(OpenSearchConfig.from_env(), NodeConfig(http_port=port), start=start)


# --- ingest ------------------------------------------------------------------------------------------------
@cli.command()
@click.argument("catalog", required=False, type=click.Path(path_type=Path))
@click.option("--dataset", help="read a public set by name instead (icecat, amazon-uk-toys, flipkart, homedepot, instacart, wands)")
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


# --- query and serving -------------------------------------------------------------------------------------
def _search_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options `search` and `serve` share: where to search, with which encoder, fusion and personalization."""
    options = [
        click.option("--alias", default="products", show_default=True, help="product alias"),
        click.option("--users-index", default="users", show_default=True, help="index of user vectors"),
        click.option("--encoder", default="all-MiniLM-L6-v2", show_default=True, help="the product index's encoder"),
        click.option("--backend", type=click.Choice(["torch", "onnx", "onnx-int8"]),
                     help="encoder backend [default: onnx when the encoder directory has onnx/model.onnx]"),
        click.option("--fusion", default="minmax", show_default=True, type=click.Choice(["minmax", "rrf"]),
                     help="hybrid fusion"),
        click.option("--bm25-weight", default=0.3, show_default=True, help="minmax: BM25 weight (vector: 1 - it)"),
        click.option("--path", "hybrid_path", default="auto", show_default=True,
                     type=click.Choice(["auto", "server", "client"]), help="hybrid: where to fuse"),
        click.option("--alpha", default=0.3, show_default=True, help="user vector weight when personalizing"),
        click.option("--min-history", default=3, show_default=True, help="fewer events: plain query (fallback)"),
        click.option("--port", default=9200, show_default=True, help=_PORT_HELP + " (when OPENSEARCH_URL is unset)"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _serve_settings(alias: str, users_index: str, encoder: str, backend: str | None, fusion: str, bm25_weight: float,
                    hybrid_path: str, alpha: float, min_history: int, port: int, warm: bool = True) -> Any:  # fmt: skip
    from tbhns_opensearch.api import ServeSettings
    from tbhns_opensearch.query.fusion import HybridConfig
    from tbhns_opensearch.users.profiles import PersonalizationConfig

    return ServeSettings(
        _cluster(port, start=False), index=alias, users_index=users_index, encoder=encoder, backend=backend,
        hybrid=HybridConfig(fusion=fusion, weights=(bm25_weight, 1.0 - bm25_weight), path=hybrid_path),
        personalization=PersonalizationConfig(alpha=alpha, min_history=min_history), warm=warm,
    )  # fmt: skip


@cli.command()
@click.argument("query")
@click.option("--mode", default="hybrid", show_default=True,
              type=click.Choice(["bm25", "semantic", "personalized", "hybrid"]))
@click.option("--user", "user_id", help="personalize for this user id (personalized and hybrid)")
@click.option("--k", default=24, show_default=True, help="number of hits")
@click.option("--offset", default=0, show_default=True, help="rank of the first hit (pagination)")
@click.option("--filter", "filter_specs", multiple=True,
              help="category=A>B, price=10..50, brand=X or attr=name=value; repeatable")
@click.option("--explain", is_flag=True, help="show each hit's BM25 and vector scores")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@_search_options
def search(query: str, mode: str, user_id: str | None, k: int, offset: int, filter_specs: tuple[str, ...],
           explain: bool, as_json: bool, **options: Any) -> None:  # fmt: skip
    """Print the top hits for QUERY and how they were found (mode, hybrid path, fallback)."""
    from rich.console import Console
    from rich.table import Table

    from tbhns_opensearch.query.builders import parse_filters

    client = _serve_settings(**options).search_client()
    response = client.search(query, user_id=user_id, mode=mode, k=k, filters=parse_filters(filter_specs),
                             offset=offset, explain=explain)  # fmt: skip
    if as_json:
        click.echo(json.dumps(asdict(response), indent=2, default=str))
        return
    how = response.mode + (f" ({response.path} side)" if response.path else "")
    if response.fallback:
        how += f"; fallback: {response.fallback_reason}"
    table = Table(title=f"{query[:60]!r}: {how}, {response.took_ms:.0f} ms")
    columns = ("rank", "id", "score", *(("bm25", "vector") if explain else ()), "title", "category path")
    for column in columns:
        table.add_column(column)
    for rank, hit in enumerate(response.hits, start=offset + 1):
        parts = [f"{hit.parts[name]:.3f}" if name in hit.parts else "-" for name in ("bm25", "vector")] if explain else []
        table.add_row(str(rank), hit.id, f"{hit.score:.4f}", *parts, hit.title[:70], " > ".join(hit.category_path))
    Console().print(table)


@cli.command("ingest-users")
@click.argument("history", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("--simulate", type=int, help="simulate N users over --catalog instead of reading HISTORY")
@click.option("--seed", default=0, show_default=True, help="simulation seed")
@click.option("--catalog", type=click.Path(exists=True, path_type=Path),
              help="catalog file: encodes products missing from the index; required by --simulate")
@click.option("--encoder", default="all-MiniLM-L6-v2", show_default=True, help="the product index's encoder")
@click.option("--backend", type=click.Choice(["torch", "onnx", "onnx-int8"]), help="[default: onnx when exported]")
@click.option("--device", default="cpu", show_default=True)
@click.option("--alias", default="products", show_default=True, help="product alias holding the product vectors")
@click.option("--users-index", default="users", show_default=True)
@click.option("--event-weight", "event_weights", multiple=True, metavar="EVENT=WEIGHT",
              help="weight of an event type (default purchase=1, add_to_cart=0.5, click=0.2); repeatable")
@click.option("--half-life", default=30 * 86400.0, show_default=True, help="recency half-life in timestamp units")
@click.option("--min-history", default=3, show_default=True, help="counted as below min_history in the summary")
@click.option("--port", default=9200, show_default=True, help=_PORT_HELP + " (when OPENSEARCH_URL is unset)")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
def ingest_users(history: Path | None, simulate: int | None, seed: int, catalog: Path | None, encoder: str,
                 backend: str | None, device: str, alias: str, users_index: str, event_weights: tuple[str, ...],
                 half_life: float, min_history: int, port: int, as_json: bool) -> None:  # fmt: skip
    """Compute user vectors from HISTORY (CSV/JSONL: user_id, product_id, event, timestamp) and store them."""
    from tbhns_opensearch.catalog import read_catalog
    from tbhns_opensearch.cluster import make_client
    from tbhns_opensearch.encoder import Encoder
    from tbhns_opensearch.users.store import UsersIngestConfig, ingest_users as run_ingest
    from tbhns_opensearch.query.encoding import default_backend
    from tbhns_opensearch.users.events import read_history
    from tbhns_opensearch.users.profiles import DEFAULT_EVENT_WEIGHTS, PersonalizationConfig
    from tbhns_opensearch.users.sources import SimulationConfig, simulate_users

    if (history is None) == (simulate is None):
        raise click.UsageError("give either a HISTORY file or --simulate N (with --catalog)")
    if simulate is not None and catalog is None:
        raise click.UsageError("--simulate draws users over the products of --catalog; pass --catalog")
    weights = dict(DEFAULT_EVENT_WEIGHTS)
    for spec in event_weights:
        name, _, value = spec.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise click.BadParameter(f"{spec!r} is not EVENT=WEIGHT, e.g. click=0.2", param_hint="--event-weight")
    products = list(read_catalog(catalog)) if catalog else []
    if simulate is not None:
        events = [event for user in simulate_users(products, SimulationConfig(users=simulate, seed=seed))
                  for event in user.events]  # fmt: skip
    else:
        events = read_history(history)
    config = UsersIngestConfig(alias, users_index, PersonalizationConfig(weights, half_life, min_history))
    product_encoder = Encoder(encoder, device=device, backend=backend or default_backend(encoder)) if catalog else None
    summary = run_ingest(make_client(_cluster(port)), events, config, products, product_encoder)
    report = {**asdict(summary), "source": "simulated" if simulate is not None else "real"}
    click.echo(json.dumps(report, indent=2) if as_json else " ".join(f"{key}={value}" for key, value in report.items()))
    if summary.missing_products:
        click.echo(f"{summary.missing_products} products of the history have no vector in {alias}"
                   + ("" if catalog else "; pass --catalog to encode them"), err=True)  # fmt: skip


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="interface to listen on")
@click.option("--http-port", default=8000, show_default=True, help="HTTP port to listen on")
@click.option("--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--no-warm", is_flag=True, help="load the encoder on the first search, not at startup")
@_search_options
def serve(host: str, http_port: int, log_level: str, no_warm: bool, **options: Any) -> None:
    """Serve GET/POST /search, /health and the OpenAPI docs (/docs) over HTTP."""
    import logging

    import uvicorn

    from tbhns_opensearch.api import create_app

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("opensearch").setLevel(max(logging.WARNING, logging.getLevelName(log_level.upper())))
    app = create_app(_serve_settings(**options, warm=not no_warm))
    uvicorn.run(app, host=host, port=http_port, log_level=log_level, access_log=False)  # the app logs each request


# --- benchmark ---------------------------------------------------------------------------------------------
@cli.group()
def bench() -> None:
    """Benchmarks: relevance and latency per mode, ingest throughput."""


@bench.command("run")
@click.argument("config_file", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "output_dir", type=click.Path(path_type=Path), help="[default: runs/bench/<config name>]")
@click.option("--port", default=9200, show_default=True, help=_PORT_HELP + " (when OPENSEARCH_URL is unset)")
def bench_run(config_file: Path, output_dir: Path | None, port: int) -> None:
    """Run every system of CONFIG_FILE on the real cluster; write runs, report.json, summary.md and plots."""
    from tbhns_opensearch.bench.runner import BenchConfig, BenchRun

    output_dir = output_dir or Path("runs") / "bench" / config_file.stem
    BenchRun(BenchConfig.from_toml(config_file), _cluster(port), output_dir).run()
    click.echo((output_dir / "summary.md").read_text())
    click.echo(f"report: {output_dir}")


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


# --- training ----------------------------------------------------------------------------------------------
@cli.command("train")
@click.argument("config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--device", help="torch device: cpu, cuda, cuda:1, mps [default: the config's, cpu]")
@click.option("--max-steps", type=int, help="optimizer steps [default: the config's]")
@click.option("--output", "output_dir", type=click.Path(file_okay=False, path_type=Path),
              help="model directory [default: the config's output_dir, else runs/train/<config name>]")
@click.option("--port", default=9200, show_default=True, help=_PORT_HELP + " (bm25 sampler, when OPENSEARCH_URL is unset)")
def train_command(config_file: Path, device: str | None, max_steps: int | None, output_dir: Path | None, port: int) -> None:
    """Train an encoder from CONFIG_FILE (training/*.toml); write the model, ONNX export and model card."""
    from tbhns_opensearch.training.config import load_train_config
    from tbhns_opensearch.training.pipeline import train_and_export

    config = load_train_config(config_file).with_overrides(
        device=device, max_steps=max_steps, output_dir=str(output_dir) if output_dir else None
    )
    trained = train_and_export(config, opensearch=_cluster(port) if config.sampler.name == "bm25" else None)
    result, report, directory = trained.result, trained.export, trained.directory
    metric = config.select_metric
    click.echo(f"{directory}: {result.steps} steps in {result.wall_s:.0f}s, best step {result.best_step}, "
               f"validation {metric} {result.history[0].metrics[metric]:.4f} -> {result.best_validation[metric]:.4f}; "
               f"ONNX min cosine {report.onnx.min_cosine:.6f}")  # fmt: skip


def _catalog_source(command: Callable[..., None]) -> Callable[..., None]:
    """CATALOG file or --dataset NAME (with --data-dir): the products a command reads."""
    command = click.option("--data-dir", type=click.Path(path_type=Path),
                           help="folder of --dataset [default: ../shared/data/<set>]")(command)  # fmt: skip
    command = click.option("--dataset", help="a public set by name instead (homedepot, amazon-uk-toys, icecat, ...)")(command)
    return click.argument("catalog", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))(command)


def _catalog_products(catalog: Path | None, dataset: str | None, data_dir: Path | None) -> list[Any]:
    from tbhns_opensearch.catalog import read_catalog
    from tbhns_opensearch.catalog.adapters import read_dataset

    if (catalog is None) == (dataset is None):
        raise click.UsageError("give either a CATALOG file or --dataset NAME")
    return list(read_dataset(dataset, data_dir) if dataset else read_catalog(catalog))


@cli.group()
def taxonomy() -> None:
    """A real taxonomy for catalogs that have none."""


@taxonomy.command("assign")
@_catalog_source
@click.option("--taxonomy-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="`ID - A > B` or `A > B` lines [default: Google's product taxonomy in ../shared/data]")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="assignments JSONL")
@click.option("--encoder", default="all-MiniLM-L6-v2", show_default=True, help="sentence-transformers path or name")
@click.option("--min-confidence", default=0.5, show_default=True, help="lowest step probability; below it: stop (unknown at the top)")
@click.option("--temperature", default=0.02, show_default=True, help="softmax temperature over children's cosines")
@click.option("--max-seq-length", default=32, show_default=True, help="tokens per product text")
def taxonomy_assign(catalog: Path | None, dataset: str | None, data_dir: Path | None, taxonomy_file: Path | None,
                    out: Path, encoder: str, min_confidence: float, temperature: float, max_seq_length: int) -> None:  # fmt: skip
    """Place every product under a node of a standard taxonomy (zero-shot, level by level)."""
    from collections import Counter

    from tbhns_opensearch.encoder import Encoder
    from tbhns_opensearch.taxonomy_assign import CategoryTree, assign_products, write_assignments

    products = _catalog_products(catalog, dataset, data_dir)
    tree = CategoryTree.read(taxonomy_file) if taxonomy_file else CategoryTree.read()
    model = Encoder(encoder, batch_size=128, max_seq_length=max_seq_length)
    click.echo(f"encoding {len(tree.nodes)} categories and {len(products)} products with {encoder}", err=True)
    node_vectors = model.encode(tree.texts())
    product_vectors = model.encode([p.text_for_embedding() for p in products])
    assignments = assign_products([p.id for p in products], product_vectors, tree, node_vectors,
                                  min_confidence=min_confidence, temperature=temperature)  # fmt: skip
    write_assignments(assignments, out)
    depths = Counter(len(a.path) for a in assignments)
    click.echo(f"{len(assignments)} products -> {out}; unknown {depths.pop(0, 0)}, by depth {dict(sorted(depths.items()))}")


@cli.group()
def queries() -> None:
    """Generated queries for catalogs without real ones (always marked source=generated)."""


@queries.command("generate")
@_catalog_source
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="labelled-queries JSONL")
@click.option("--seed", default=13, show_default=True)
@click.option("--per-product", default=2, show_default=True, help="query kinds tried per product")
@click.option("--type-attribute", help="attribute naming the product type [default: the leaf category]")
@click.option("--no-mates", is_flag=True, help="do not grade 1 the products sharing brand and type with a source")
def queries_generate(catalog: Path | None, dataset: str | None, data_dir: Path | None, out: Path, seed: int,
                     per_product: int, type_attribute: str | None, no_mates: bool) -> None:  # fmt: skip
    """Write one line per (query, product): grade 2 for the query's source products, 1 for mates."""
    from collections import Counter

    from tbhns_opensearch.eval.queries import write_labelled_queries
    from tbhns_opensearch.training.querygen import generate_queries

    products = _catalog_products(catalog, dataset, data_dir)
    generated = generate_queries(products, seed=seed, per_product=per_product, type_attribute=type_attribute,
                                 grade_mates=not no_mates)  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    write_labelled_queries(out, (judgment for query in generated for judgment in query.judgments()))
    kinds = Counter(query.kind for query in generated)
    click.echo(f"{len(generated)} generated queries from {len(products)} products -> {out} ({dict(sorted(kinds.items()))})")
