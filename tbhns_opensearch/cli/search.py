"""`tbhns search` and `tbhns serve`: the query API from the shell and over HTTP."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import click

from tbhns_opensearch.cli.app import BACKEND_OPTION, EMBED_TOKEN_ENV, PORT_HELP, cli, cluster_for


def _search_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options `search` and `serve` share: where to search, with which encoder, fusion and personalization."""
    options = [
        click.option("--alias", default="products", show_default=True, help="product alias"),
        click.option("--users-index", default="users", show_default=True, help="index of user vectors"),
        click.option("--encoder", default="all-MiniLM-L6-v2", show_default=True, help="the product index's encoder"),
        BACKEND_OPTION,
        click.option(
            "--fusion", default="minmax", show_default=True, type=click.Choice(["minmax", "rrf"]), help="hybrid fusion"
        ),
        click.option(
            "--bm25-weight",
            type=click.FloatRange(0.0, 1.0),
            help="minmax: BM25 weight (vector: 1 - it) "
            "[default: 0.6, chosen with the depth on validation queries: benchmarks/results/hybrid_depth.md]",
        ),
        click.option(
            "--path",
            "hybrid_path",
            default="auto",
            show_default=True,
            type=click.Choice(["auto", "server", "client"]),
            help="hybrid: where to fuse",
        ),
        click.option(
            "--depth",
            "hybrid_depth",
            type=click.IntRange(1, 10_000),
            help="hybrid: candidates per sub-query, at least the page's end (quality vs latency: "
            "benchmarks/results/hybrid_depth.md) [default: 24]",
        ),
        click.option("--alpha", default=0.3, show_default=True, help="user vector weight when personalizing"),
        click.option("--min-history", default=3, show_default=True, help="fewer events: plain query (fallback)"),
        click.option(
            "--user-model/--no-user-model",
            default=True,
            show_default=True,
            help="personalize users whose profile stores a history (ingest-users --history) with the "
            "learned user model in the encoder directory's user_model/ folder; off: always blend",
        ),
        click.option(
            "--user-ttl",
            "user_ttl_s",
            type=click.FloatRange(0.0),
            help="seconds a user's profile is reused before it is read again; 0: read on every search "
            "(in the search's own request) [default: 60]",
        ),
        click.option(
            "--model-id",
            help="a model deployed in the cluster (`tbhns deploy`): semantic and hybrid "
            "searches without a user send a `neural` clause and the cluster embeds the query",
        ),
        click.option("--port", default=9200, show_default=True, help=PORT_HELP + " (when OPENSEARCH_URL is unset)"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _hybrid_overrides(bm25_weight: float | None, depth: int | None) -> dict[str, Any]:
    """The `HybridConfig` fields the user set; the others keep its defaults (one home for them).

    Example:
        >>> _hybrid_overrides(0.25, None)
        {'weights': (0.25, 0.75)}
    """
    from tbhns_opensearch.query.fusion import bm25_weighted

    overrides: dict[str, Any] = {} if depth is None else {"depth": depth}
    if bm25_weight is not None:
        overrides["weights"] = bm25_weighted(bm25_weight)
    return overrides


def _serve_settings(
    alias: str,
    users_index: str,
    encoder: str,
    backend: str,
    fusion: str,
    bm25_weight: float | None,
    hybrid_path: str,
    hybrid_depth: int | None,
    alpha: float,
    min_history: int,
    user_ttl_s: float | None,
    model_id: str | None,
    port: int,
    warm: bool = True,
    user_model: bool = True,
) -> Any:
    from tbhns_opensearch.api import ServeSettings
    from tbhns_opensearch.query.fusion import HybridConfig
    from tbhns_opensearch.users.profiles import PersonalizationConfig

    return ServeSettings(
        cluster_for(port, start=False),
        index=alias,
        users_index=users_index,
        encoder=encoder,
        backend=backend,
        hybrid=HybridConfig(fusion=fusion, path=hybrid_path, **_hybrid_overrides(bm25_weight, hybrid_depth)),
        personalization=PersonalizationConfig(alpha=alpha, min_history=min_history),
        warm=warm,
        model_id=model_id,
        user_model=user_model,
        **({} if user_ttl_s is None else {"user_ttl_s": user_ttl_s}),
        embed_token=os.environ.get(EMBED_TOKEN_ENV) or None,
    )


@cli.command()
@click.argument("query")
@click.option(
    "--mode", default="hybrid", show_default=True, type=click.Choice(["bm25", "semantic", "personalized", "hybrid"])
)
@click.option("--user", "user_id", help="personalize for this user id (personalized and hybrid)")
@click.option("--k", default=24, show_default=True, help="number of hits")
@click.option("--offset", default=0, show_default=True, help="rank of the first hit (pagination)")
@click.option(
    "--filter", "filter_specs", multiple=True, help="category=A>B, price=10..50, brand=X or attr=name=value; repeatable"
)
@click.option("--explain", is_flag=True, help="show each hit's BM25 and vector scores")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@_search_options
def search(
    query: str,
    mode: str,
    user_id: str | None,
    k: int,
    offset: int,
    filter_specs: tuple[str, ...],
    explain: bool,
    as_json: bool,
    **options: Any,
) -> None:
    """Print the top hits for QUERY and how they were found (mode, hybrid path, fallback)."""
    from rich.console import Console
    from rich.table import Table

    from tbhns_opensearch.query.builders import parse_filters

    filters = parse_filters(filter_specs)  # a bad filter is a usage error (exit 2) before any cluster call
    client = _serve_settings(**options).search_client()
    response = client.search(query, user_id=user_id, mode=mode, k=k, filters=filters, offset=offset, explain=explain)
    if as_json:
        click.echo(json.dumps(asdict(response), indent=2, default=str))
        return
    how = response.mode + (f" ({response.path} side)" if response.path else "")
    if response.personalization:
        how += f", {response.personalization} personalization (alpha {response.alpha:.2f})"
    if response.fallback:
        how += f"; fallback: {response.fallback_reason}"
    table = Table(title=f"{query[:60]!r}: {how}, {response.took_ms:.0f} ms")
    columns = ("rank", "id", "score", *(("bm25", "vector") if explain else ()), "title", "category path")
    for column in columns:
        table.add_column(column)
    for rank, hit in enumerate(response.hits, start=offset + 1):
        parts = (
            [f"{hit.parts[name]:.3f}" if name in hit.parts else "-" for name in ("bm25", "vector")] if explain else []
        )
        table.add_row(str(rank), hit.id, f"{hit.score:.4f}", *parts, hit.title[:70], " > ".join(hit.category_path))
    Console().print(table)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="interface to listen on")
@click.option("--http-port", default=8000, show_default=True, help="HTTP port to listen on")
@click.option(
    "--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"])
)
@click.option("--no-warm", is_flag=True, help="load the encoder on the first search, not at startup")
@click.option(
    "--name",
    default="default",
    show_default=True,
    help="what the comparison page calls --alias with --encoder (e.g. trained)",
)
@click.option(
    "--system",
    "systems",
    multiple=True,
    metavar="NAME=ALIAS,ENCODER[,USERS_INDEX]",
    help="another alias and its encoder for the comparison page (e.g. base=products-base,all-MiniLM-L6-v2); repeatable",
)
@click.option(
    "--judgments",
    type=click.Path(exists=True, dir_okay=False),
    help="grades for the comparison page: a labelled-queries JSONL, or a file in --judgments-dataset's layout",
)
@click.option("--judgments-dataset", help="the layout of --judgments when it is not JSONL: icecat, wands or homedepot")
@click.option(
    "--threads",
    default=16,
    show_default=True,
    type=click.IntRange(1, 1024),
    help="searches served at once; more wait in the event loop (benchmarks/results/load_api_icecat.md)",
)
@click.option(
    "--list-users",
    "user_list",
    type=click.Choice(["off", "ids", "masked"]),
    default="off",
    show_default=True,
    is_flag=False,
    flag_value="ids",
    help="let the comparison page list users (any client can read the list; for trusted networks): "
    "--list-users shows their ids, --list-users masked labels like al***@***.com",
)  # api.users.USER_LISTS
@_search_options
def serve(
    host: str,
    http_port: int,
    log_level: str,
    no_warm: bool,
    name: str,
    systems: tuple[str, ...],
    judgments: str | None,
    judgments_dataset: str | None,
    threads: int,
    user_list: str,
    **options: Any,
) -> None:
    """Serve GET/POST /search, /health, the OpenAPI docs (/docs) and the comparison page (/) over HTTP; with
    TBHNS_EMBED_TOKEN set, also POST /embed for the cluster's remote model (`tbhns deploy`)."""
    import logging
    from dataclasses import replace

    import uvicorn

    from tbhns_opensearch.api import create_app
    from tbhns_opensearch.api.compare import SystemSpec, judgments_by_query
    from tbhns_opensearch.eval.queries import load_labelled_queries

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("opensearch").setLevel(max(logging.WARNING, logging.getLevelName(log_level.upper())))
    graded = None
    if judgments:
        queries = judgments if judgments.endswith(".jsonl") else "judgments"
        graded = judgments_by_query(load_labelled_queries(queries, judgments_dataset, judgments=judgments))
    settings = replace(
        _serve_settings(**options, warm=not no_warm),
        name=name,
        judgments=graded,
        systems=tuple(SystemSpec.parse(spec) for spec in systems),
        threads=threads,
        user_list=user_list,
    )
    app = create_app(settings)
    uvicorn.run(app, host=host, port=http_port, log_level=log_level, access_log=False)  # the app logs each request
