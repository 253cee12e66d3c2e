"""`tbhns search` and `tbhns serve`: the query API from the shell and over HTTP."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import click

from tbhns_opensearch.cli.app import BACKEND_OPTION, EMBED_TOKEN_ENV, cli, cluster_for, port_option
from tbhns_opensearch.cli.options import field_option
from tbhns_opensearch.config import DEFAULT_ENCODER

SERVE = "tbhns_opensearch.api:ServeSettings."  # the `field_option` sources of the shared options
HYBRID = "tbhns_opensearch.query:HybridConfig."
PERSONALIZATION = "tbhns_opensearch.users.profiles:PersonalizationConfig."
SEARCH = "tbhns_opensearch.query:SearchClient.search."
WARM_UP = "warm up"  # encoded once before the search, so that the search's own encoding is timed warm


def _search_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options `search` and `serve` share: where to search, with which encoder, fusion and personalization."""
    options = [
        field_option("--alias", source=SERVE + "alias"),
        field_option("--users-index", source=SERVE + "users_index"),
        field_option("--encoder", source=SERVE + "encoder"),
        BACKEND_OPTION,
        field_option("--fusion", source=HYBRID + "fusion", type=click.Choice(["minmax", "rrf"])),
        field_option(
            "--bm25-weight",
            source=HYBRID + "weights",
            pick=lambda weights: weights[0],
            type=click.FloatRange(0.0, 1.0),
            help="minmax: BM25 weight (vector: 1 - it)",
        ),
        field_option("--path", "hybrid_path", source=HYBRID + "path", type=click.Choice(["auto", "server", "client"])),
        field_option("--depth", "hybrid_depth", source=HYBRID + "depth", type=click.IntRange(1, 10_000)),
        field_option("--alpha", source=PERSONALIZATION + "alpha"),
        field_option("--min-history", source=PERSONALIZATION + "min_history"),
        field_option("--user-model/--no-user-model", source=SERVE + "user_model"),
        field_option("--user-ttl", "user_ttl_s", source=SERVE + "user_ttl_s", type=click.FloatRange(0.0)),
        field_option("--model-id", source=SERVE + "model_id"),
        port_option(" (when OPENSEARCH_URL is unset)"),
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
        alias=alias,
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


def _encodes_here(mode: str, user_id: str | None, model_id: str | None, explain: bool) -> bool:
    """Whether a search encodes its query in this process (`SearchClient`'s modes): every mode but bm25, except
    semantic searches, and hybrid ones without a user, that a model deployed in the cluster embeds (`--model-id`).

    Example:
        >>> _encodes_here("semantic", None, None, False), _encodes_here("semantic", None, "m1", False)
        (True, False)
    """
    if mode == "bm25":
        return False
    return mode == "personalized" or model_id is None or explain or (mode == "hybrid" and user_id is not None)


def _load_models(client: Any, personalizes: bool) -> list[str]:
    """Load the query encoder (and, for a personalized search, the learned user model beside it) before the
    search is timed, as `tbhns serve` does at startup; one line each saying how long it took."""
    started = time.perf_counter()
    client.query_encoder.encode(WARM_UP)  # loads the model and runs it once
    encoder = client.query_encoder
    lines = [f"encoder {encoder.name} ({encoder.encoder.backend}) loaded in {time.perf_counter() - started:.2f} s"]
    started = time.perf_counter()
    if personalizes and client.user_model is not None:
        lines.append(f"user model beside {encoder.name} loaded in {time.perf_counter() - started:.2f} s")
    return lines


def _what_was_timed(encodes: bool, personalizes: bool, in_cluster: bool) -> str:
    """What a search's `took_ms` covers, in the order the search does it.

    Example:
        >>> _what_was_timed(True, True, False)
        'query encoding + user profile read + OpenSearch requests'
    """
    steps = ["query encoding"] if encodes else []
    steps += ["user profile read"] if personalizes else []
    steps.append("OpenSearch requests" + (" (the cluster embeds the query)" if in_cluster else ""))
    return " + ".join(steps)


@cli.command()
@click.argument("query")
@field_option(
    "--mode",
    source=SEARCH + "mode",
    type=click.Choice(["bm25", "semantic", "personalized", "hybrid"]),
    help="bm25 (words), semantic (the query's vector), personalized (moved toward the user's) or hybrid (both)",
)
@click.option("--user", "user_id", help="personalize for this user id (personalized and hybrid)")
@field_option("--k", source=SEARCH + "k", help="number of hits")
@field_option("--offset", source=SEARCH + "offset", help="rank of the first hit (pagination)")
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
    """Print the top hits for QUERY and how they were found (mode, hybrid path, fallback).

    A mode that encodes the query here loads the encoder first (and, for a user, the learned user model beside
    it) and reports each load on its own line, on stderr. The search's own time follows the hits, with what it
    covers: query encoding, the user's profile read and the requests to OpenSearch, as this process measured
    them; being the process's first search, it also includes connecting and one-time reads of the index and
    cluster setup. With --json, the response alone (its took_ms is the same search time).
    """
    from rich.console import Console
    from rich.table import Table

    from tbhns_opensearch.query.builders import parse_filters
    from tbhns_opensearch.query.results import USER_MODES

    filters = parse_filters(filter_specs)  # a bad filter is a usage error (exit 2) before any cluster call
    client = _serve_settings(**options).search_client()
    encodes = _encodes_here(mode, user_id, options["model_id"], explain)
    personalizes = user_id is not None and mode in USER_MODES
    loaded = _load_models(client, personalizes) if encodes else []
    for line in [] if as_json else loaded:  # --json: the response alone, even where stderr shows beside it
        click.echo(line, err=True)
    response = client.search(query, user_id=user_id, mode=mode, k=k, filters=filters, offset=offset, explain=explain)
    if as_json:
        click.echo(json.dumps(asdict(response), indent=2, default=str))
        return
    how = response.mode + (f" ({response.path} side)" if response.path else "")
    if response.personalization:
        how += f", {response.personalization} personalization (alpha {response.alpha:.2f})"
    if response.fallback:
        how += f"; fallback: {response.fallback_reason}"
    table = Table(title=f"{query[:60]!r}: {how}")
    columns = ("rank", "id", "score", *(("bm25", "vector") if explain else ()), "title", "category path")
    for column in columns:
        table.add_column(column)
    for rank, hit in enumerate(response.hits, start=offset + 1):
        parts = (
            [f"{hit.parts[name]:.3f}" if name in hit.parts else "-" for name in ("bm25", "vector")] if explain else []
        )
        table.add_row(str(rank), hit.id, f"{hit.score:.4f}", *parts, hit.title[:70], " > ".join(hit.category_path))
    Console().print(table)
    timed = _what_was_timed(encodes, personalizes, in_cluster=mode != "bm25" and not encodes)
    click.echo(
        f"{how}, {response.took_ms:.1f} ms: {timed}, measured in this process (its first search, so also "
        "connecting and one-time reads of the index and cluster setup)"
    )


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="interface to listen on")
@click.option("--http-port", default=8000, show_default=True, help="HTTP port to listen on")
@click.option(
    "--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"])
)
@field_option("--warm/--no-warm", source=SERVE + "warm")
@field_option("--name", source=SERVE + "name")
@click.option(
    "--system",
    "systems",
    multiple=True,
    metavar="NAME=ALIAS,ENCODER[,USERS_INDEX]",
    help=f"another alias and its encoder for the comparison page (e.g. base=products-base,{DEFAULT_ENCODER}); "
    "repeatable",
)
@click.option(
    "--judgments",
    type=click.Path(exists=True, dir_okay=False),
    help="grades for the comparison page: a labelled-queries JSONL, or a file in --judgments-dataset's layout",
)
@click.option("--judgments-dataset", help="the layout of --judgments when it is not JSONL: icecat, wands or homedepot")
@field_option("--threads", source=SERVE + "threads", type=click.IntRange(1, 1024))
@field_option("--profile-cache-mb", source=SERVE + "profile_cache_mb", type=click.IntRange(0))
@field_option(
    "--list-users",
    "user_list",
    source=SERVE + "user_list",
    type=click.Choice(["off", "ids", "masked"]),  # api.users.USER_LISTS
    is_flag=False,
    flag_value="ids",
    note="; --list-users alone: ids",
)
@_search_options
def serve(
    host: str,
    http_port: int,
    log_level: str,
    warm: bool,
    name: str,
    systems: tuple[str, ...],
    judgments: str | None,
    judgments_dataset: str | None,
    threads: int,
    profile_cache_mb: int,
    user_list: str,
    **options: Any,
) -> None:
    """Serve GET/POST /search, /health, the OpenAPI docs (/docs) and the comparison page (/) over HTTP; with
    TBHNS_EMBED_TOKEN set, also POST /embed for the cluster's remote model (`tbhns deploy`)."""
    import logging
    from dataclasses import replace

    import uvicorn

    from tbhns_opensearch.api import create_app
    from tbhns_opensearch.api.compare import ComparedSystem, judgments_by_query
    from tbhns_opensearch.eval.queries import load_labelled_queries

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("opensearch").setLevel(max(logging.WARNING, logging.getLevelName(log_level.upper())))
    graded = None
    if judgments:
        queries = judgments if judgments.endswith(".jsonl") else "judgments"
        graded = judgments_by_query(load_labelled_queries(queries, judgments_dataset, judgments=judgments))
    settings = replace(
        _serve_settings(**options, warm=warm),
        name=name,
        judgments=graded,
        systems=tuple(ComparedSystem.parse(spec) for spec in systems),
        threads=threads,
        profile_cache_mb=profile_cache_mb,
        user_list=user_list,
    )
    app = create_app(settings)
    uvicorn.run(app, host=host, port=http_port, log_level=log_level, access_log=False)  # the app logs each request
