"""Ingest and ingest-users under faults, on the real node: a proxy that breaks a bulk request, a cluster that
blocks writes, output paths that are the user's own files, a users index that is not one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tbhns_opensearch.catalog import Product, write_catalog_jsonl
from tbhns_opensearch.cli import cli
from tbhns_opensearch.cluster import make_client
from tbhns_opensearch.config import OpenSearchConfig
from tbhns_opensearch.errors import IngestError
from tbhns_opensearch.index.ingest import IngestConfig, ingest_products
from tbhns_opensearch.index.templates import alias_targets
from tbhns_opensearch.users.events import UserEvent
from tbhns_opensearch.users.store import UsersIngestConfig, ingest_users
from tests.helpers import fixture_products
from tests.integration.index.fault_proxy import FAULTS, FaultProxy

pytestmark = pytest.mark.integration
SMALL_CHUNKS = IngestConfig(encode_chunk=20, bulk_chunk=20, progress=False)


def _count(os_client, alias: str) -> int:  # type: ignore[no-untyped-def]
    return os_client.count(index=alias)["count"]


def _indices(os_client, alias: str) -> set[str]:  # type: ignore[no-untyped-def]
    return set(os_client.indices.get(index=f"{alias}-*", expand_wildcards="all"))


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("rebuild", [False, True], ids=["first-ingest", "rebuild"])
def test_a_broken_bulk_answer_never_publishes_a_half_index(
    os_client, opensearch_config, encoder, index_config, fault: str, rebuild: bool
) -> None:
    products = fixture_products("toys_products.jsonl")[:100]  # five bulk requests of 20
    previous = ingest_products(os_client, products[:30], encoder, index_config, SMALL_CHUNKS) if rebuild else None
    config = IngestConfig(encode_chunk=20, bulk_chunk=20, progress=False, rebuild=rebuild)
    with FaultProxy(opensearch_config.url, fault, on_bulk=2) as proxy:
        try:
            summary = ingest_products(
                make_client(OpenSearchConfig(url=proxy.url)), products, encoder, index_config, config
            )
        except IngestError as exc:
            assert fault != "reset", exc  # the client retries a reset connection: that bulk is sent again
            served = [previous.index] if previous else []
            assert alias_targets(os_client, index_config.alias) == served  # never the half index
            assert _indices(os_client, index_config.alias) == set(served)  # and the half index is gone
            assert (_count(os_client, index_config.alias) == 30) if previous else True
            assert (" still points at " if previous else "no alias") in str(exc)
        else:
            assert fault == "reset", f"the ingest went on through a {fault} bulk answer: {summary}"
            assert _count(os_client, index_config.alias) == 100  # every product exactly once


def test_the_cli_says_one_line_when_the_cluster_answers_a_bulk_with_no_json(
    opensearch_config, index_config, tmp_path: Path, monkeypatch
) -> None:
    catalog = tmp_path / "catalog.jsonl"
    write_catalog_jsonl(fixture_products("toys_products.jsonl")[:40], catalog)
    with FaultProxy(opensearch_config.url, "bad-body", on_bulk=1) as proxy:
        monkeypatch.setenv("OPENSEARCH_URL", proxy.url)
        from tbhns_opensearch.cli.app import main

        monkeypatch.setattr("sys.argv", ["tbhns", "ingest", str(catalog), "--alias", index_config.alias])
        with pytest.raises(SystemExit) as exit_info:
            main()
    assert exit_info.value.code == 3  # the cluster failed; never 0 with half the products
    assert alias_targets(make_client(opensearch_config), index_config.alias) == []


def test_a_cluster_that_blocks_writes_stops_the_encoding_at_once(os_client, encoder, index_config) -> None:
    live = ingest_products(os_client, fixture_products("toys_products.jsonl")[:20], encoder, index_config, SMALL_CHUNKS)
    os_client.indices.put_settings(index=live.index, body={"index.blocks.write": True})  # as a disk filling mid-run
    pulled = [0]

    def products() -> Iterator[Product]:
        for product in fixture_products("toys_products.jsonl")[:600]:
            pulled[0] += 1
            yield product

    config = IngestConfig(encode_chunk=20, bulk_chunk=20, max_retries=1, initial_backoff_s=0.05, progress=False)
    try:
        with pytest.raises(IngestError, match="cluster_block_exception"):
            ingest_products(os_client, products(), encoder, index_config, config)
    finally:
        os_client.indices.put_settings(index=live.index, body={"index.blocks.write": None})
    assert pulled[0] <= 20 * 8, f"{pulled[0]} of 600 products were read after the writer had failed"
    assert _count(os_client, index_config.alias) == 20


def test_an_update_of_a_live_alias_never_switches_its_refresh_off(os_client, encoder, index_config) -> None:
    products = fixture_products("toys_products.jsonl")[:60]
    live = ingest_products(os_client, products[:20], encoder, index_config, SMALL_CHUNKS)
    os_client.indices.put_settings(index=live.index, body={"index": {"refresh_interval": "-1"}})  # a killed older run's
    seen: list[str | None] = []

    def watched() -> Iterator[Product]:
        for number, product in enumerate(products):
            if number == 40:  # mid-write: what a kill -9 here would leave
                settings = os_client.indices.get_settings(index=live.index)[live.index]["settings"]["index"]
                seen.append(settings.get("refresh_interval"))
            yield product

    ingest_products(os_client, watched(), encoder, index_config, SMALL_CHUNKS)
    assert seen == [None]  # the template's refresh, restored at the start of the run
    assert _count(os_client, index_config.alias) == 60


def test_rejects_path_that_is_the_catalog_or_a_users_file_is_refused_and_left_intact(
    opensearch_config, index_config, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("OPENSEARCH_URL", opensearch_config.url)
    catalog = tmp_path / "victim.jsonl"
    write_catalog_jsonl(fixture_products("toys_products.jsonl")[:5], catalog)
    precious = tmp_path / "precious.txt"
    precious.write_text("my notes\n")
    for target in (catalog, precious):
        before = target.read_bytes()
        result = CliRunner().invoke(
            cli, ["ingest", str(catalog), "--alias", index_config.alias, "--rejects", str(target)]
        )
        assert result.exit_code != 0 and "is not a rejects file" in str(result.exception or result.output)
        assert target.read_bytes() == before
    assert alias_targets(make_client(opensearch_config), index_config.alias) == []  # refused before any index


def test_rejects_file_of_an_earlier_run_is_replaced_and_a_clean_run_creates_none(
    opensearch_config, index_config, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("OPENSEARCH_URL", opensearch_config.url)
    catalog, rejects = tmp_path / "c.jsonl", tmp_path / "c.rejects.jsonl"
    catalog.write_text('{"id": "a", "title": "Red car"}\n{"id": "b"}\n')
    result = CliRunner().invoke(cli, ["ingest", str(catalog), "--alias", index_config.alias, "--rejects", str(rejects)])
    assert result.exit_code == 1 and [json.loads(line)["line"] for line in rejects.read_text().splitlines()] == [2]
    catalog.write_text('{"id": "a", "title": "Red car"}\n')
    result = CliRunner().invoke(cli, ["ingest", str(catalog), "--alias", index_config.alias, "--rejects", str(rejects)])
    assert result.exit_code == 0, result.output
    assert not rejects.exists()  # the earlier run's rejects were its own: no stale file stays


@pytest.fixture
def toys_alias(os_client, encoder, index_config) -> Iterator[tuple[str, list[Product]]]:  # type: ignore[no-untyped-def]
    products = fixture_products("toys_products.jsonl")[:12]
    ingest_products(os_client, products, encoder, index_config, IngestConfig(progress=False))
    yield index_config.alias, products


def test_ingest_users_never_writes_into_a_product_index_or_alias(os_client, toys_alias) -> None:
    alias, products = toys_alias
    (product_index,) = alias_targets(os_client, alias)
    events = [UserEvent(products[0].id, products[1].id, "purchase", 1.0)]  # a user id equal to a product id
    for target in (alias, product_index):
        with pytest.raises(IngestError, match="not a users index|not made by `tbhns ingest-users`"):
            ingest_users(os_client, events, UsersIngestConfig(alias, target))
    stored = os_client.get(index=alias, id=products[0].id)["_source"]
    assert stored["title"] == products[0].title and "user_id" not in stored
    mapping = os_client.indices.get_mapping(index=product_index)[product_index]["mappings"]["properties"]
    assert "user_id" not in mapping


def _ingest_users_cli(rows: list[str], alias: str, url: str, tmp_path: Path, monkeypatch) -> Result:  # type: ignore[no-untyped-def]
    """`tbhns ingest-users` of a history CSV of `rows` into `<alias>-users`."""
    history = tmp_path / "history.csv"
    history.write_text("user_id,product_id,event,timestamp\n" + "\n".join(rows) + "\n")
    monkeypatch.setenv("OPENSEARCH_URL", url)
    return CliRunner().invoke(cli, ["ingest-users", str(history), "--alias", alias, "--users-index", f"{alias}-users"])


def test_ingest_users_rejects_an_overlong_user_id_and_writes_the_rest(
    os_client, opensearch_config, toys_alias, tmp_path: Path, monkeypatch
) -> None:
    alias, products = toys_alias
    users_index = f"{alias}-users"
    rows = [f"u{n},{products[n].id},purchase,{n}" for n in range(5)] + [f"{'x' * 600},{products[0].id},purchase,1"]
    try:
        result = _ingest_users_cli(rows, alias, opensearch_config.url, tmp_path, monkeypatch)
        assert result.exit_code == 1, result.output
        assert "rejected user 'xxxx" in result.stderr and "600 bytes" in result.stderr
        assert _count(os_client, users_index) == 5
    finally:
        os_client.indices.delete(index=users_index, ignore_unavailable=True)


def test_ingest_users_refuses_a_history_with_a_nan_timestamp_and_writes_nothing(
    os_client, opensearch_config, toys_alias, tmp_path: Path, monkeypatch
) -> None:
    alias, products = toys_alias
    result = _ingest_users_cli(
        [f"nanuser,{products[0].id},purchase,nan"], alias, opensearch_config.url, tmp_path, monkeypatch
    )
    assert result.exit_code != 0 and "history.csv:2: timestamp 'nan' is not a finite number" in str(result.exception)
    assert not os_client.indices.exists(index=f"{alias}-users")


def test_ingest_users_with_no_node_says_how_to_start_one_and_starts_none(tmp_path: Path, monkeypatch) -> None:
    from tbhns_opensearch.cluster import LocalNode, NodeConfig

    monkeypatch.delenv("OPENSEARCH_URL", raising=False)
    history = tmp_path / "history.csv"
    history.write_text("user_id,product_id,event,timestamp\nu1,p1,purchase,1\n")
    port = 9391
    result = CliRunner().invoke(cli, ["ingest-users", str(history), "--port", str(port)])
    assert result.exit_code != 0 and "tbhns opensearch start --port 9391" in str(result.exception)
    assert LocalNode(NodeConfig(http_port=port)).health() is None
