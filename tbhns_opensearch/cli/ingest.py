"""`tbhns ingest`: a catalog, encoded and bulk-written behind an alias."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from tbhns_opensearch.cli.app import BACKEND_OPTION, BATCH_SIZE_HELP, cli, cluster_for, port_option
from tbhns_opensearch.cli.options import field_option
from tbhns_opensearch.config import DEFAULT_ENCODER

INDEX = "tbhns_opensearch.index.templates:IndexConfig."  # the `field_option` sources
INGEST = "tbhns_opensearch.index.ingest:IngestConfig."
ENCODER = "tbhns_opensearch.encoder:Encoder."


@cli.command()
@click.argument("catalog", required=False, type=click.Path(path_type=Path))
@click.option(
    "--dataset",
    help="read a public set by name instead (icecat, amazon-uk-toys, flipkart, homedepot, instacart, wands)",
)
@click.option("--data-dir", type=click.Path(path_type=Path), help="folder of --dataset [default: ../shared/data/<set>]")
@click.option("--mapping", "mapping_file", type=click.Path(exists=True, path_type=Path), help="JSON column mapping")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "tsv", "parquet"]), help="[default: from suffix]")
@click.option("--encoder", default=DEFAULT_ENCODER, show_default=True, help="sentence-transformers path or name")
@BACKEND_OPTION
@field_option(
    "--device",
    source=ENCODER + "device",
    help="where the encoder runs, e.g. cpu or cuda; a comma list (cuda:0,cuda:1) encodes the catalog in one "
    "process per listed device",
)
@field_option("--encode-workers", "encode_workers", source=ENCODER + "workers")
@click.option("--batch-size", type=int, help=BATCH_SIZE_HELP)
@field_option("--alias", source=INDEX + "alias")
@field_option("--rebuild", source=INGEST + "rebuild", is_flag=True)
@field_option("--engine", source=INDEX + "engine", type=click.Choice(["lucene", "faiss", "nmslib"]))
@field_option("--space-type", source=INDEX + "space_type")
@field_option("--m", "hnsw_m", source=INDEX + "m")
@field_option("--ef-construction", source=INDEX + "ef_construction")
@field_option("--ef-search", source=INDEX + "ef_search")
@field_option("--shards", source=INDEX + "shards", type=click.IntRange(1, 1024))
@field_option("--replicas", source=INDEX + "replicas", type=click.IntRange(0, 16))
@click.option(
    "--rejects", type=click.Path(path_type=Path), help="JSONL of rejected records [default: <catalog>.rejects.jsonl]"
)
@port_option(" (when OPENSEARCH_URL is unset)")
@field_option("--pipeline", source=INGEST + "pipeline", note="; --encoder must be the one the deployed model serves")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
def ingest(
    catalog: Path | None,
    dataset: str | None,
    data_dir: Path | None,
    mapping_file: Path | None,
    fmt: str | None,
    encoder: str,
    backend: str,
    device: str,
    encode_workers: int,
    batch_size: int | None,
    alias: str,
    rebuild: bool,
    engine: str,
    space_type: str,
    hnsw_m: int,
    ef_construction: int,
    ef_search: int,
    shards: int,
    replicas: int,
    rejects: Path | None,
    port: int,
    pipeline: str | None,
    as_json: bool,
) -> None:
    """Read CATALOG (JSONL, CSV, Parquet), encode products and bulk-write them behind the alias."""
    from tbhns_opensearch.catalog import ColumnMapping, read_catalog
    from tbhns_opensearch.catalog.adapters import read_dataset
    from tbhns_opensearch.catalog.stream import check_rejects_path, excerpt
    from tbhns_opensearch.cluster import make_client
    from tbhns_opensearch.encoder import Encoder
    from tbhns_opensearch.index.ingest import IngestConfig, ingest_products, refusal
    from tbhns_opensearch.index.templates import IndexConfig

    if (catalog is None) == (dataset is None):
        raise click.UsageError("give either a CATALOG file or --dataset NAME")
    # checked before any node starts; its worker processes (with several) start at the first encode
    product_encoder = Encoder(
        encoder, device=device, batch_size=batch_size, backend=backend, bulk=True, workers=encode_workers
    )
    rejects = rejects or Path(f"{catalog or dataset}.rejects.jsonl")
    check_rejects_path(rejects)  # refused before any index is made: never a file the command did not write
    if dataset:
        stream = read_dataset(dataset, data_dir, rejects_path=rejects)
    else:
        mapping = ColumnMapping.from_file(mapping_file) if mapping_file else None
        stream = read_catalog(catalog, mapping, fmt, rejects_path=rejects)
    index_config = IndexConfig(
        alias=alias,
        engine=engine,
        space_type=space_type,
        m=hnsw_m,
        ef_construction=ef_construction,
        ef_search=ef_search,
        shards=shards,
        replicas=replicas,
    )
    client = make_client(cluster_for(port))
    with product_encoder:  # stops the worker processes, however the ingest ends
        summary = ingest_products(
            client, stream, product_encoder, index_config, IngestConfig(rebuild=rebuild, pipeline=pipeline)
        )
    report = {
        "index": summary.index,
        "alias": alias,
        "backend": summary.backend,
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
        click.echo(f"not indexed {excerpt(failure['id'])!r}: {refusal(failure)}", err=True)
    if report["rejected"]:
        sys.exit(1)
