"""`tbhns ingest-users`: user vectors from histories (or simulated users) into the users index."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import click

from tbhns_opensearch.cli.app import BACKEND_OPTION, DEVICE_OPTION, cli, cluster_for, port_option
from tbhns_opensearch.cli.options import field_option
from tbhns_opensearch.config import DEFAULT_ENCODER

USERS = "tbhns_opensearch.users.store:UsersIngestConfig."  # the `field_option` sources
PERSONALIZATION = "tbhns_opensearch.users.profiles:PersonalizationConfig."


@cli.command("ingest-users")
@click.argument("history", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("--simulate", type=int, help="simulate N users over --catalog instead of reading HISTORY")
@click.option("--seed", default=0, show_default=True, help="simulation seed")
@click.option(
    "--catalog",
    type=click.Path(exists=True, path_type=Path),
    help="catalog file: encodes products missing from the index; required by --simulate",
)
@click.option("--encoder", default=DEFAULT_ENCODER, show_default=True, help="the product index's encoder")
@BACKEND_OPTION
@DEVICE_OPTION
@field_option("--alias", source=USERS + "product_alias")
@field_option("--users-index", source=USERS + "users_index")
@field_option(
    "--event-weight",
    "event_weights",
    source=PERSONALIZATION + "event_weights",
    pick=lambda _: (),  # each event type keeps its default weight unless given here
    shown=lambda weights: ", ".join(f"{event}={weight:g}" for event, weight in weights.items()),
    multiple=True,
    metavar="EVENT=WEIGHT",
    note="; repeatable",
)
@field_option("--half-life", source=PERSONALIZATION + "half_life")
@field_option("--min-history", source=PERSONALIZATION + "min_history", note="; counted in the summary")
@click.option(
    "--history",
    "history_size",
    type=click.IntRange(0),
    help="last products stored per user for the learned user model (0: none) [default: the max_history "
    "of the user model in --encoder's user_model/ folder, else 0]",
)
@port_option(" (when OPENSEARCH_URL is unset)")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
def ingest_users(
    history: Path | None,
    simulate: int | None,
    seed: int,
    catalog: Path | None,
    encoder: str,
    backend: str,
    device: str,
    alias: str,
    users_index: str,
    event_weights: tuple[str, ...],
    half_life: float,
    min_history: int,
    history_size: int | None,
    port: int,
    as_json: bool,
) -> None:
    """Compute user vectors from HISTORY (CSV/JSONL: user_id, product_id, event, timestamp) and store them."""
    from tbhns_opensearch.catalog import read_catalog
    from tbhns_opensearch.catalog.fields import MAX_ID_BYTES
    from tbhns_opensearch.catalog.stream import excerpt
    from tbhns_opensearch.cluster import make_client
    from tbhns_opensearch.encoder import Encoder
    from tbhns_opensearch.users.events import read_history
    from tbhns_opensearch.users.profiles import (
        DEFAULT_EVENT_WEIGHTS,
        PersonalizationConfig,
    )
    from tbhns_opensearch.users.sources import SimulationConfig, simulate_users
    from tbhns_opensearch.users.store import UsersIngestConfig
    from tbhns_opensearch.users.store import ingest_users as run_ingest

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
            raise click.BadParameter(
                f"{spec!r} is not EVENT=WEIGHT, e.g. click=0.2", param_hint="--event-weight"
            ) from None
    products = list(read_catalog(catalog)) if catalog else []
    if simulate is not None:
        events = [
            event
            for user in simulate_users(products, SimulationConfig(users=simulate, seed=seed))
            for event in user.events
        ]
    else:
        events = read_history(history)
    if history_size is None:
        from tbhns_opensearch.users.attention import stored_history_size, user_model_beside

        history_size = stored_history_size(user_model_beside(encoder))
    personalization = PersonalizationConfig(weights, half_life, min_history, history_size=history_size)
    config = UsersIngestConfig(alias, users_index, personalization)
    product_encoder = Encoder(encoder, device=device, backend=backend, bulk=True) if catalog else None
    # never start an empty node: it holds no product vectors to build users from
    summary = run_ingest(make_client(cluster_for(port, start=False)), events, config, products, product_encoder)
    report = {
        **asdict(summary),
        "rejected_users": len(summary.rejected_users),
        "source": "simulated" if simulate is not None else "real",
    }
    click.echo(json.dumps(report, indent=2) if as_json else " ".join(f"{key}={value}" for key, value in report.items()))
    if summary.missing_products:
        click.echo(
            f"{summary.missing_products} products of the history have no vector in {alias}"
            + ("" if catalog else "; pass --catalog to encode them"),
            err=True,
        )
    for user_id in summary.rejected_users[:20]:
        click.echo(
            f"rejected user {excerpt(user_id)!r}: its id is {len(user_id.encode('utf-8', 'surrogatepass'))} "
            f"bytes, OpenSearch ids hold at most {MAX_ID_BYTES}; shorten it (e.g. a hash)",
            err=True,
        )
    if summary.rejected_users:
        sys.exit(1)
