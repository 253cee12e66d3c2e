"""What tests share besides fixtures: paths, the committed fixture catalogs, the toys search environment and a
bench run on the test cluster."""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from tbhns_opensearch.catalog import Product, read_catalog
from tbhns_opensearch.config import OpenSearchConfig
from tbhns_opensearch.encoder import Encoder
from tbhns_opensearch.index.ingest import IngestConfig, ingest_products
from tbhns_opensearch.index.templates import IndexConfig
from tbhns_opensearch.query import SearchClient
from tbhns_opensearch.users.events import UserEvent
from tbhns_opensearch.users.profiles import PersonalizationConfig
from tbhns_opensearch.users.store import UsersIngestConfig, ingest_users

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[1]


def load_script(relative: str) -> ModuleType:
    """A script of the repository that is no package module (benchmarks/*.py, training/*.py), loaded by path."""
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fixture_products(name: str) -> list[Product]:
    """All products of a committed fixture catalog."""
    return list(read_catalog(FIXTURES / name))


SLOT_CARS = ("Hobbies", "Slot Cars, Race Tracks & Accessories")
TRAINS = ("Hobbies", "Model Trains & Railway Sets")
LEAVES = {
    ("Die-Cast & Toy Vehicles", "Toy Vehicles & Accessories"),
    SLOT_CARS,
    TRAINS,
    ("Hobbies", "Remote Controlled Devices"),
    ("Games", "Chess"),
}
PERSONALIZATION = PersonalizationConfig(alpha=0.3, min_history=3, half_life=None)


@dataclass(frozen=True)
class Env:
    """A searchable toys catalog on the test node: its alias, users index, products and a client."""

    alias: str
    users_index: str
    products: dict[str, Product]
    search: SearchClient


def toys_search_env(os_client, opensearch_config: OpenSearchConfig, encoder: Encoder) -> Iterator[Env]:  # type: ignore[no-untyped-def]
    """368 Amazon UK toys from five leaves in a fresh alias, and a users index with `slotcar-fan` (six slot-car
    purchases) and `newbie` (one purchase, below min_history=3); both indices are deleted afterwards."""
    suffix = uuid.uuid4().hex[:10]
    config = IndexConfig(alias=f"test-search-{suffix}")
    users_index = f"test-users-{suffix}"
    products = [p for p in fixture_products("toys_products.jsonl") if p.taxonomy_path[:2] in LEAVES]
    ingest_products(os_client, products, encoder, config, IngestConfig(progress=False))
    slot_cars = sorted(p.id for p in products if p.taxonomy_path[:2] == SLOT_CARS)
    events = [UserEvent("slotcar-fan", product_id, "purchase", float(t)) for t, product_id in enumerate(slot_cars[:6])]
    events.append(UserEvent("newbie", slot_cars[0], "purchase", 0.0))
    ingest_users(os_client, events, UsersIngestConfig(config.alias, users_index, PERSONALIZATION))
    search = SearchClient(
        opensearch_config, config.alias, encoder, users_index=users_index, personalization=PERSONALIZATION
    )
    yield Env(config.alias, users_index, {p.id: p for p in products}, search)
    os_client.indices.delete(index=f"{config.alias}-*,{users_index}", ignore_unavailable=True)
    os_client.indices.delete_index_template(name=config.template_name, ignore=[404])


def run_bench(
    config_file: Path,
    out: Path,
    opensearch_config: OpenSearchConfig,
    os_client,
    cleanup: str,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    """`tbhns bench run CONFIG_FILE --out OUT` on the test cluster; delete the indices matching `cleanup` after.
    Returns the command's output; fails the test when it exits non-zero."""
    from click.testing import CliRunner

    from tbhns_opensearch.cli import cli

    monkeypatch.setenv("OPENSEARCH_URL", opensearch_config.url)
    try:
        result = CliRunner().invoke(cli, ["bench", "run", str(config_file), "--out", str(out)])
        assert result.exit_code == 0, result.output
    finally:
        os_client.indices.delete(index=cleanup, ignore_unavailable=True)
    return result.output
