"""`tbhns queries generate`: generated queries, labelled as such."""

from __future__ import annotations

from pathlib import Path

import click

from tbhns_opensearch.cli.app import catalog_products, catalog_source, cli


@cli.group()
def queries() -> None:
    """Generated queries for catalogs without real ones (always marked source=generated)."""


@queries.command("generate")
@catalog_source
@click.option(
    "--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="labelled-queries JSONL"
)
@click.option("--seed", default=13, show_default=True)
@click.option("--per-product", default=2, show_default=True, help="query kinds tried per product")
@click.option("--type-attribute", help="attribute naming the product type [default: the leaf category]")
@click.option("--no-mates", is_flag=True, help="do not grade 1 the products sharing brand and type with a source")
def queries_generate(
    catalog: Path | None,
    dataset: str | None,
    data_dir: Path | None,
    out: Path,
    seed: int,
    per_product: int,
    type_attribute: str | None,
    no_mates: bool,
) -> None:
    """Write one line per (query, product): grade 2 for the query's source products, 1 for mates."""
    from collections import Counter

    from tbhns_opensearch.eval.queries import write_labelled_queries
    from tbhns_opensearch.training.querygen import generate_queries

    products = catalog_products(catalog, dataset, data_dir)
    generated = generate_queries(
        products, seed=seed, per_product=per_product, type_attribute=type_attribute, grade_mates=not no_mates
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    write_labelled_queries(out, (judgment for query in generated for judgment in query.judgments()))
    kinds = Counter(query.kind for query in generated)
    click.echo(
        f"{len(generated)} generated queries from {len(products)} products -> {out} ({dict(sorted(kinds.items()))})"
    )
