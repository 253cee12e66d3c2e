"""`tbhns taxonomy assign`: a real taxonomy for catalogs that have none."""

from __future__ import annotations

from pathlib import Path

import click

from tbhns_opensearch.cli.app import catalog_products, catalog_source, cli
from tbhns_opensearch.cli.options import field_option
from tbhns_opensearch.config import DEFAULT_ENCODER

ASSIGN = "tbhns_opensearch.taxonomy_assign:assign_products."  # the `field_option` sources


@cli.group()
def taxonomy() -> None:
    """A real taxonomy for catalogs that have none."""


@taxonomy.command("assign")
@catalog_source
@click.option(
    "--taxonomy-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="`ID - A > B` or `A > B` lines [default: Google's product taxonomy in ../shared/data]",
)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="assignments JSONL")
@click.option("--encoder", default=DEFAULT_ENCODER, show_default=True, help="sentence-transformers path or name")
@field_option(
    "--min-confidence",
    source=ASSIGN + "min_confidence",
    help="lowest step probability; below it: stop (unknown at the top)",
)
@field_option("--temperature", source=ASSIGN + "temperature", help="softmax temperature over children's cosines")
@click.option("--max-seq-length", default=32, show_default=True, help="tokens per product text")
def taxonomy_assign(
    catalog: Path | None,
    dataset: str | None,
    data_dir: Path | None,
    taxonomy_file: Path | None,
    out: Path,
    encoder: str,
    min_confidence: float,
    temperature: float,
    max_seq_length: int,
) -> None:
    """Place every product under a node of a standard taxonomy (zero-shot, level by level)."""
    from collections import Counter

    from tbhns_opensearch.encoder import Encoder
    from tbhns_opensearch.taxonomy_assign import (
        CategoryTree,
        assign_products,
        write_assignments,
    )

    products = catalog_products(catalog, dataset, data_dir)
    tree = CategoryTree.read(taxonomy_file) if taxonomy_file else CategoryTree.read()
    model = Encoder(encoder, batch_size=128, max_seq_length=max_seq_length)
    click.echo(f"encoding {len(tree.nodes)} categories and {len(products)} products with {encoder}", err=True)
    node_vectors = model.encode(tree.texts(), progress="categories")
    product_vectors = model.encode([p.text_for_embedding() for p in products], progress="products")
    assignments = assign_products(
        [p.id for p in products],
        product_vectors,
        tree,
        node_vectors,
        min_confidence=min_confidence,
        temperature=temperature,
    )
    write_assignments(assignments, out)
    depths = Counter(len(a.path) for a in assignments)
    click.echo(
        f"{len(assignments)} products -> {out}; unknown {depths.pop(0, 0)}, by depth {dict(sorted(depths.items()))}"
    )
