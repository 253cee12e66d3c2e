"""Every search mode, filters, personalization, hybrid paths and the HTTP app against the real node.

One module-scoped product index (368 Amazon UK toys from five leaves) and one users index with fixture users
built from those products: `slotcar-fan` (six slot-car purchases) and `newbie` (one purchase, below
min_history=3), from `tests.helpers.toys_search_env`. Both indices are deleted at the end.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from tbhns_opensearch.api import ServeSettings, create_app
from tbhns_opensearch.catalog import Product, write_catalog_jsonl
from tbhns_opensearch.cli import cli
from tbhns_opensearch.encoder import Encoder, load_sentence_transformer
from tbhns_opensearch.errors import EncoderMismatchError, IngestError, SearchError
from tbhns_opensearch.index.ingest import IngestConfig, ingest_products
from tbhns_opensearch.index.templates import load_template
from tbhns_opensearch.query import SearchClient, SearchHit, SearchResponse, profile_reading
from tbhns_opensearch.query.builders import parse_filters
from tbhns_opensearch.query.fusion import HybridConfig
from tbhns_opensearch.query.transport import ProductTransport
from tbhns_opensearch.users.events import UserEvent
from tbhns_opensearch.users.profiles import UserProfile
from tbhns_opensearch.users.store import (
    UsersIngestConfig,
    fetch_product_vectors,
    get_user_profile,
    ingest_users,
    write_user_profiles,
)
from tests.helpers import PERSONALIZATION, SLOT_CARS, TRAINS, Env, fixture_products, toys_search_env

pytestmark = pytest.mark.integration

MODES = ("bm25", "semantic", "personalized", "hybrid")


@pytest.fixture(scope="module")
def env(os_client, opensearch_config, encoder):  # type: ignore[no-untyped-def]
    yield from toys_search_env(os_client, opensearch_config, encoder)


def _ids(response: SearchResponse) -> list[str]:
    return [hit.id for hit in response.hits]


def _leaf_share(env: Env, response: SearchResponse, leaf: tuple[str, ...]) -> int:
    return sum(env.products[hit.id].taxonomy_path[:2] == leaf for hit in response.hits)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("query", "expected_id", "leaf"),
    [
        ("chess set", "d4f4936c368c46e5e72565fffadf9da5", ("Games", "Chess")),
        ("remote control helicopter", "bc7be3c23db9c7deba3491b89a295845", ("Hobbies", "Remote Controlled Devices")),
        ("hornby locomotive", "bdd43e34552ee5d84b793ccceb27b701", TRAINS),
    ],
)
def test_each_mode_finds_the_expected_products(
    env: Env, mode: str, query: str, expected_id: str, leaf: tuple[str, ...]
) -> None:
    response = env.search.search(query, user_id="slotcar-fan" if mode == "personalized" else None, mode=mode, k=5)
    assert expected_id in _ids(response)
    assert _leaf_share(env, response, leaf) == 5
    assert response.requested_mode == mode and response.took_ms > 0


@pytest.mark.parametrize("mode", MODES)
def test_filters_restrict_every_mode(env: Env, mode: str) -> None:
    filters = parse_filters(["category=Hobbies>Model Trains & Railway Sets", "price=10..200", "brand=hornby"])
    response = env.search.search("train", user_id="slotcar-fan", mode=mode, k=10, filters=filters)
    assert response.hits
    for hit in response.hits:
        product = env.products[hit.id]
        assert product.taxonomy_path[:2] == TRAINS and product.brand == "Hornby" and 10 <= product.price <= 200


def test_attribute_filter(env: Env) -> None:
    wanted = "number_available_in_stock=2 new"
    response = env.search.search("car", mode="hybrid", k=10, filters=parse_filters([f"attr={wanted}"]))
    assert response.hits
    assert all(env.products[hit.id].attributes.get("number_available_in_stock") == "2 new" for hit in response.hits)


@pytest.mark.parametrize(("mode", "path"), [("semantic", None), ("hybrid", "server"), ("hybrid", "client")])
def test_knn_filter_sits_inside_the_clause(env: Env, mode: str, path: str | None) -> None:
    """A post-filter on the 10 nearest chess sets would leave nothing; inside the knn clause it leaves 10."""
    response = env.search.search(
        "chess set", mode=mode, k=10, filters=parse_filters(["category=" + ">".join(SLOT_CARS)]), path=path
    )
    assert len(response.hits) == 10
    assert _leaf_share(env, response, SLOT_CARS) == 10


@pytest.mark.parametrize("mode", ["personalized", "hybrid"])
def test_personalization_lifts_the_users_category(env: Env, mode: str) -> None:
    plain = env.search.search("car", mode="semantic" if mode == "personalized" else "hybrid", k=10)
    personal = env.search.search("car", user_id="slotcar-fan", mode=mode, k=10)
    assert (personal.mode, personal.fallback, personal.alpha) == (mode, False, 0.3)
    assert _leaf_share(env, personal, SLOT_CARS) > _leaf_share(env, plain, SLOT_CARS)


@pytest.mark.parametrize(
    ("user_id", "reason"),
    [
        ("nobody", "unknown user 'nobody': no stored history"),
        ("newbie", "user 'newbie' has 1 events, fewer than min_history=3"),
    ],
)
def test_unknown_and_short_history_users_get_semantic_results(env: Env, user_id: str, reason: str) -> None:
    semantic = env.search.search("car", mode="semantic", k=10)
    personal = env.search.search("car", user_id=user_id, mode="personalized", k=10)
    assert (personal.mode, personal.requested_mode, personal.fallback, personal.fallback_reason) == (
        "semantic",
        "personalized",
        True,
        reason,
    )
    assert personal.hits == semantic.hits
    hybrid = env.search.search("car", user_id=user_id, mode="hybrid", k=10)
    assert (hybrid.fallback, hybrid.fallback_reason) == (True, reason)
    assert hybrid.hits == env.search.search("car", mode="hybrid", k=10).hits


def test_user_profiles_are_reused_for_their_ttl(env: Env, os_client, opensearch_config, encoder) -> None:
    users_index = f"test-users-ttl-{uuid.uuid4().hex[:8]}"
    events = [UserEvent("ttl-fan", pid, "purchase", float(t)) for t, pid in enumerate(sorted(env.products)[:4])]
    ingest_users(os_client, events, UsersIngestConfig(env.alias, users_index, PERSONALIZATION))
    cached, uncached = (
        SearchClient(
            opensearch_config,
            env.alias,
            encoder,
            users_index=users_index,
            personalization=PERSONALIZATION,
            user_ttl_s=ttl,
        )
        for ttl in (60.0, 0.0)
    )
    try:
        assert not cached.search("car", user_id="ttl-fan", mode="personalized").fallback
        assert not uncached.search("car", user_id="ttl-fan", mode="personalized").fallback
        os_client.delete(index=users_index, id="ttl-fan", refresh=True)
        assert not cached.search("car", user_id="ttl-fan", mode="personalized").fallback  # the cached profile
        assert uncached.search("car", user_id="ttl-fan", mode="personalized").fallback  # read again: gone
    finally:
        os_client.indices.delete(index=users_index, ignore_unavailable=True)


def test_a_new_query_reads_the_profile_while_it_is_encoded(env: Env, opensearch_config, encoder, monkeypatch) -> None:
    """Neither the query's vector nor the user's profile is cached: the profile is read on the reader thread
    while the query is encoded, and the results are those of the sequential path (both cached)."""
    readers: list[str] = []

    def recording_get(*args: object) -> object:
        readers.append(threading.current_thread().name)
        return get_user_profile(*args)

    search = SearchClient(
        opensearch_config, env.alias, encoder, users_index=env.users_index, personalization=PERSONALIZATION
    )
    monkeypatch.setattr(profile_reading, "get_user_profile", recording_get)
    first = search.search("toy car for a boy", user_id="slotcar-fan", mode="personalized", k=10)
    again = search.search("toy car for a boy", user_id="slotcar-fan", mode="personalized", k=10)
    assert len(readers) == 1 and readers[0].startswith("tbhns-profile")
    assert not first.fallback and first.hits == again.hits and first.alpha == again.alpha


def test_without_a_profile_cache_every_search_reads_its_user_whole(
    env: Env, opensearch_config, encoder, monkeypatch
) -> None:
    """profile_cache_mb=0 keeps no read: each search reads the profile whole (no rider, nothing held), and answers
    as a client with the cache does."""
    reads: list[str] = []

    def recording_get(*args: object) -> object:
        reads.append(str(args[-1]))
        return get_user_profile(*args)

    def client(**cache: int) -> SearchClient:
        return SearchClient(
            opensearch_config, env.alias, encoder, users_index=env.users_index, personalization=PERSONALIZATION, **cache
        )

    uncached, cached = client(profile_cache_mb=0), client()
    monkeypatch.setattr(profile_reading, "get_user_profile", recording_get)
    answers = [uncached.search("toy car for a boy", user_id="slotcar-fan", mode="personalized", k=10) for _ in "ab"]
    assert reads == ["slotcar-fan", "slotcar-fan"] and len(uncached.profiles.cache) == 0
    expected = cached.search("toy car for a boy", user_id="slotcar-fan", mode="personalized", k=10)
    assert not expected.fallback and all(answer.hits == expected.hits for answer in answers)


@pytest.mark.parametrize(("mode", "path"), [("personalized", None), ("hybrid", "server"), ("hybrid", "client")])
def test_a_profile_read_on_every_query_rides_in_the_search_request(
    env: Env, os_client, opensearch_config, encoder, monkeypatch, mode: str, path: str | None
) -> None:
    """user_ttl_s=0: each query reads the profile in the same request as the search (one msearch), which runs
    with the last profile read; when the read finds a changed or deleted profile, the search runs again and
    the answer is the stored profile's."""
    users_index = f"test-users-ride-{uuid.uuid4().hex[:8]}"
    fan = sorted(p for p in env.products if env.products[p].taxonomy_path[:2] == SLOT_CARS)[:4]
    train_fan = sorted(p for p in env.products if env.products[p].taxonomy_path[:2] == TRAINS)[:4]
    ingest_users(
        os_client,
        [UserEvent("fan", pid, "purchase", float(t)) for t, pid in enumerate(fan)],
        UsersIngestConfig(env.alias, users_index, PERSONALIZATION),
    )

    def client() -> SearchClient:
        return SearchClient(
            opensearch_config,
            env.alias,
            encoder,
            users_index=users_index,
            personalization=PERSONALIZATION,
            user_ttl_s=0.0,
        )

    search, requests = client(), []
    perform = search.client.transport.perform_request

    def recording(method: str, url: str, *args: object, **kwargs: object) -> object:
        requests.append(url)
        return perform(method, url, *args, **kwargs)

    def query() -> SearchResponse:
        return search.search("toy car for a boy", user_id="fan", mode=mode, k=10, path=path)

    try:
        first = query()
        monkeypatch.setattr(search.client.transport, "perform_request", recording)
        again = query()
        assert requests == ["/_msearch"] and again.hits == first.hits and not again.fallback
        ingest_users(
            os_client,
            [UserEvent("fan", pid, "purchase", 10.0 + t) for t, pid in enumerate(train_fan)],
            UsersIngestConfig(env.alias, users_index, PERSONALIZATION),
        )
        changed = query()
        assert changed.hits == client().search("toy car for a boy", user_id="fan", mode=mode, k=10, path=path).hits
        assert changed.hits != first.hits
        os_client.delete(index=users_index, id="fan", refresh=True)
        gone = query()
        assert gone.fallback and gone.fallback_reason == "unknown user 'fan': no stored history"
        os_client.indices.delete(index=users_index)
        assert query().hits == gone.hits  # no users index: no user, as for `get`
    finally:
        os_client.indices.delete(index=users_index, ignore_unavailable=True)


def _assert_same_ranking(server: list[SearchHit], client: list[SearchHit]) -> None:
    """Same scores rank by rank; same ids except that tied products may swap (OpenSearch breaks ties by doc id)."""
    assert [hit.score for hit in server] == pytest.approx([hit.score for hit in client], abs=1e-6)
    groups: dict[float, tuple[set[str], set[str]]] = {}
    for left, right in zip(server, client):
        key = round(left.score, 6)
        groups.setdefault(key, (set(), set()))[0].add(left.id)
        groups[key][1].add(right.id)
    last = round(server[-1].score, 6)
    for key, (left_ids, right_ids) in groups.items():
        if key != last:  # the last tie group may be cut differently at the page end
            assert left_ids == right_ids


@pytest.mark.parametrize("fusion", ["minmax", "rrf"])
@pytest.mark.parametrize(
    ("query", "filters", "offset", "user_id"),
    [
        ("car", [], 0, None),
        ("racing car set", [], 10, "slotcar-fan"),
        ("wooden train", ["price=5..100"], 0, None),
    ],
)
def test_server_and_client_hybrid_agree(
    env: Env, opensearch_config, encoder, fusion: str, query: str, filters: list[str], offset: int, user_id: str | None
) -> None:
    search = SearchClient(
        opensearch_config,
        env.alias,
        encoder,
        users_index=env.users_index,
        personalization=PERSONALIZATION,
        hybrid=HybridConfig(fusion=fusion, depth=50),
    )
    kwargs = {
        "user_id": user_id,
        "mode": "hybrid",
        "k": 15,
        "filters": parse_filters(filters),
        "offset": offset,
        "explain": True,
    }
    server, client = search.search(query, path="server", **kwargs), search.search(query, path="client", **kwargs)
    assert (server.path, client.path) == ("server", "client")
    assert len(server.hits) == 15
    _assert_same_ranking(server.hits, client.hits)
    client_parts = {hit.id: hit.parts for hit in client.hits}
    for hit in server.hits:
        if hit.id in client_parts:
            assert hit.parts == client_parts[hit.id]


def _record_requests(search: SearchClient, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs `search` sends from now on, in order (the requests still go to the node)."""
    sent: list[str] = []
    perform = search.client.transport.perform_request
    monkeypatch.setattr(
        search.client.transport,
        "perform_request",
        lambda method, url, *args, **kw: sent.append(url) or perform(method, url, *args, **kw),
    )
    return sent


@pytest.mark.parametrize(("path", "endpoint"), [("server", "/_search"), ("client", "/_msearch")])
@pytest.mark.parametrize(("query", "filters", "offset"), [("car", [], 0), ("wooden train", ["price=5..100"], 7)])
def test_hybrid_page_in_one_request_equals_the_two_request_page(
    env: Env,
    opensearch_config,
    encoder,
    monkeypatch: pytest.MonkeyPatch,
    query: str,
    filters: list[str],
    offset: int,
    path: str,
    endpoint: str,
) -> None:
    search = SearchClient(opensearch_config, env.alias, encoder, users_index=env.users_index)
    kwargs = {"mode": "hybrid", "k": 12, "filters": parse_filters(filters), "offset": offset, "path": path}
    search.search(query, **kwargs)  # warm: mapping, plugins and pipeline read once
    assert search.transport.display_doc_values  # an index made from the template has its display fields as doc values
    sent = _record_requests(search, monkeypatch)
    one = search.search(query, **kwargs)
    assert len(sent) == 1 and sent[0].endswith(endpoint)
    monkeypatch.setattr(
        ProductTransport, "display_doc_values", property(lambda self: False)
    )  # an index older than that
    two = search.search(query, **kwargs)
    assert len(sent) == 3 and sent[2].endswith("/_mget")  # ids, then mget
    assert len(one.hits) == 12 and one.hits == two.hits  # same ids, scores, titles, brands, paths and prices
    assert all(hit.title and hit.category_path for hit in one.hits)


@pytest.mark.parametrize(("mode", "user"), [("bm25", None), ("semantic", None), ("personalized", "slotcar-fan")])
def test_pages_from_doc_values_equal_pages_from_stored_fields(
    env: Env, opensearch_config, encoder, monkeypatch: pytest.MonkeyPatch, mode: str, user: str | None
) -> None:
    search = SearchClient(opensearch_config, env.alias, encoder, users_index=env.users_index)
    from_doc_values = search.search("wooden train", mode=mode, k=12, user_id=user)
    assert search.transport.display_doc_values
    monkeypatch.setattr(
        ProductTransport, "display_doc_values", property(lambda self: False)
    )  # an index older than that
    from_stored_fields = search.search("wooden train", mode=mode, k=12, user_id=user)
    assert len(from_doc_values.hits) >= 5 and from_doc_values.hits == from_stored_fields.hits
    assert all(hit.title and hit.category_path for hit in from_doc_values.hits)


@pytest.mark.parametrize(("mode", "path"), [("bm25", "server"), ("hybrid", "server"), ("hybrid", "client")])
def test_a_title_of_any_length_comes_whole_in_the_one_request(
    os_client, opensearch_config, encoder, index_config, monkeypatch: pytest.MonkeyPatch, mode: str, path: str
) -> None:
    title = "Zanzibar heritage wooden railway set, " + "with carriages and track ✓ " * 25  # ~700 bytes, UTF-8
    products = [*fixture_products("toys_products.jsonl")[:30], Product(id="long", title=title, price=9.5)]
    ingest_products(os_client, products, encoder, index_config, IngestConfig(progress=False))
    search = SearchClient(opensearch_config, index_config.alias, encoder)
    search.search("zanzibar", mode=mode, path=path, k=5)  # warm: mapping, plugins and pipeline read once
    sent = _record_requests(search, monkeypatch)
    top = search.search("zanzibar", mode=mode, path=path, k=5).hits[0]
    assert (top.id, top.title, top.price) == ("long", title, 9.5)
    assert len(sent) == 1  # no second request for the page (a keyword doc value stops at its ignore_above)


def test_auto_path_is_server_side_on_a_node_with_neural_search(env: Env) -> None:
    assert env.search.capabilities.has_hybrid
    assert env.search.search("car", mode="hybrid", k=3).path == "server"


def test_explain_gives_the_raw_bm25_and_vector_scores(env: Env) -> None:
    hybrid = env.search.search("hornby train set", mode="hybrid", k=10, explain=True)
    depth = env.search.hybrid.depth  # the candidate list each sub-query retrieves
    bm25 = {hit.id: hit.score for hit in env.search.search("hornby train set", mode="bm25", k=depth).hits}
    vector = {hit.id: hit.score for hit in env.search.search("hornby train set", mode="semantic", k=depth).hits}
    assert any(set(hit.parts) == {"bm25", "vector"} for hit in hybrid.hits)
    for hit in hybrid.hits:
        assert hit.parts and hit.parts.keys() <= {"bm25", "vector"}
        assert (hit.parts.get("bm25"), hit.parts.get("vector")) == (bm25.get(hit.id), vector.get(hit.id))
    plain = env.search.search("hornby train set", mode="bm25", k=3, explain=True)
    assert all(hit.parts == {"bm25": hit.score} for hit in plain.hits)


@pytest.mark.parametrize(
    ("mode", "path"), [("bm25", None), ("semantic", None), ("hybrid", "server"), ("hybrid", "client")]
)
def test_pages_follow_on(env: Env, mode: str, path: str | None) -> None:
    whole = env.search.search("train set", mode=mode, k=10, path=path)
    pages = [env.search.search("train set", mode=mode, k=5, offset=offset, path=path) for offset in (0, 5)]
    assert [hit.score for page in pages for hit in page.hits] == pytest.approx([hit.score for hit in whole.hits])
    assert _ids(pages[0]) == _ids(whole)[:5]


@pytest.mark.parametrize("path", ["server", "client"])
def test_hybrid_on_a_missing_alias_is_a_search_error_naming_it(opensearch_config, encoder, path: str) -> None:
    search = SearchClient(opensearch_config, f"no-such-alias-{uuid.uuid4().hex[:6]}", encoder)
    with pytest.raises(SearchError, match=rf"{search.alias} failed \(404\): index_not_found_exception"):
        search.search("train set", mode="hybrid", path=path)


@pytest.mark.parametrize(
    ("mode", "path"), [("bm25", None), ("semantic", None), ("hybrid", "server"), ("hybrid", "client")]
)
def test_a_page_past_the_last_hit_is_empty(env: Env, mode: str, path: str | None) -> None:
    # neural-search answers a hybrid page past the end with a 400; schemathesis found it (offset 512 of 368)
    beyond = env.search.search("train set", mode=mode, k=100, offset=len(env.products) + 10, path=path)
    assert beyond.hits == []


NASTY = [
    '"unterminated quote',
    "title:(hornby OR lego) AND NOT [1 TO 5] {x}",
    "back\\slash\\\\ \\",
    "AND OR NOT",
    "🚂🚃🚃 choo choo 🎉",
    "<script>alert(1)</script>",
    "x" * 300 + " " + "train " * 2000,
]  # last: ~12 kB


@pytest.mark.parametrize("text", NASTY)
def test_nasty_queries_neither_fail_nor_act_as_syntax(env: Env, text: str) -> None:
    for mode in MODES:
        for path in ("server", "client") if mode == "hybrid" else (None,):
            response = env.search.search(text, user_id="slotcar-fan", mode=mode, k=5, path=path)
            assert isinstance(response.hits, list)


def test_syntax_is_plain_text(env: Env) -> None:
    assert env.search.search("*:*", mode="bm25", k=5).hits == []  # query_string would match everything
    not_chess = env.search.search("NOT chess", mode="bm25", k=5)
    assert _leaf_share(env, not_chess, ("Games", "Chess")) == 5  # NOT is a word (a stopword), not an operator


def test_stored_profile_matches_the_fixture_user(os_client, env: Env) -> None:
    profile = get_user_profile(os_client, env.users_index, "slotcar-fan")
    assert profile is not None and (profile.event_count, profile.source) == (6, "real")
    fan_products = sorted(p for p in env.products if env.products[p].taxonomy_path[:2] == SLOT_CARS)[:6]
    stored = fetch_product_vectors(os_client, env.alias, fan_products)
    vectors = np.stack([stored[pid] for pid in fan_products])
    expected = vectors.mean(axis=0)
    np.testing.assert_allclose(profile.vector, expected / np.linalg.norm(expected), atol=1e-6)
    assert get_user_profile(os_client, env.users_index, "nobody") is None


def test_a_users_index_of_json_vectors_is_read_and_upgraded(os_client) -> None:
    users_index = f"test-users-json-{uuid.uuid4().hex[:8]}"
    older = {
        "user_id": "older",
        "vector": [0.6, 0.8],
        "dimension": 2,
        "event_count": 4,
        "last_event": 1.0,
        "last_update": "2026-01-01T00:00:00+00:00",
        "source": "real",
    }
    template = load_template("users")
    del template["mappings"]["properties"]["vector_bytes"]  # the index as written before `vector_bytes`
    os_client.indices.create(index=users_index, body=template)
    try:
        os_client.index(index=users_index, id="older", body=older, refresh=True)
        write_user_profiles(os_client, users_index, [UserProfile("newer", np.array([0.8, 0.6]), 5, 2.0, "real")])
        newer = os_client.get(index=users_index, id="newer")["_source"]
        assert "vector" not in newer and "vector_bytes" in newer  # strict mapping: the write needed the new field
        for user_id, vector in (("older", [0.6, 0.8]), ("newer", [0.8, 0.6])):
            profile = get_user_profile(os_client, users_index, user_id)
            assert profile is not None
            np.testing.assert_allclose(profile.vector, vector, atol=1e-7)
    finally:
        os_client.indices.delete(index=users_index, ignore_unavailable=True)


def test_a_users_index_with_a_conflicting_field_is_a_clear_error(os_client) -> None:
    users_index = f"test-users-conflict-{uuid.uuid4().hex[:8]}"
    os_client.indices.create(
        index=users_index, body={"mappings": {"properties": {"vector_bytes": {"type": "keyword"}}}}
    )
    try:
        with pytest.raises(
            IngestError, match=f"index {users_index} was not made by `tbhns ingest-users` .*--users-index"
        ):
            write_user_profiles(os_client, users_index, [UserProfile("u", np.array([0.6, 0.8]), 5, 2.0, "real")])
    finally:
        os_client.indices.delete(index=users_index, ignore_unavailable=True)


def test_http_search_and_health_on_the_real_node(env: Env, opensearch_config, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")  # what a server logs
    app = create_app(ServeSettings(opensearch_config, alias=env.alias, warm=False), search_client=env.search)
    with TestClient(app) as http:
        got = http.get("/search", params={"query": "hornby locomotive", "k": 5, "filter": ["brand=Hornby"]})
        assert got.status_code == 200, got.text
        body = got.json()
        assert (body["mode"], body["path"], len(body["hits"])) == ("hybrid", "server", 5)
        assert {hit["brand"] for hit in body["hits"]} == {"Hornby"}
        posted = http.post("/search", json={"query": "car", "mode": "personalized", "user_id": "newbie", "k": 3})
        assert posted.status_code == 200
        assert (posted.json()["mode"], posted.json()["fallback"]) == ("semantic", True)
        logged = [r.getMessage() for r in caplog.records if r.name != "opensearchpy.trace"]  # trace: off in `serve`
        assert not [line for line in logged if "newbie" in line or "127.0.0.1:9250/" in line]  # no user id, no URL
        health = http.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "ok" and health.json()["cluster"]["index_exists"] is True


def test_a_price_beyond_float32_is_a_usage_error_in_the_cli_and_a_422_over_http(env: Env, opensearch_config) -> None:
    tbhns = Path(sys.executable).parent / "tbhns"
    done = subprocess.run(
        [tbhns, "search", "car", "--alias", env.alias, "--mode", "bm25", "--filter", "price=1e39.."],
        capture_output=True,
        text=True,
        env={**os.environ, "OPENSEARCH_URL": opensearch_config.url},
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "error: price filter '1e39..' must be MIN..MAX, MIN.. or ..MAX with finite numbers "
        "within ±3.4e+38 (a float32), e.g. price=10..50"
    )
    app = create_app(ServeSettings(opensearch_config, alias=env.alias, warm=False), search_client=env.search)
    with TestClient(app) as http:
        for mode in MODES:
            got = http.get("/search", params={"query": "car", "mode": mode, "filter": "price=1e39.."})
            assert got.status_code == 422 and "within ±3.4e+38" in got.json()["details"][0]["message"], got.text


def test_the_page_lists_users_only_when_asked_and_masked_ones_by_token(env: Env, opensearch_config) -> None:
    def options(user_list: str) -> tuple[TestClient, dict]:  # type: ignore[type-arg]
        settings = ServeSettings(
            opensearch_config, alias=env.alias, users_index=env.users_index, warm=False, user_list=user_list
        )
        http = TestClient(create_app(settings, search_client=env.search))
        got = http.get("/compare/options")
        assert got.status_code == 200, got.text
        return http, got.json()

    assert options("off")[1]["users"] == []
    listed = options("ids")[1]["users"]
    assert [(user["user_id"], user["label"]) for user in listed] == [
        ("slotcar-fan", "slotcar-fan"),
        ("newbie", "newbie"),
    ]
    http, masked = options("masked")
    assert [user["label"] for user in masked["users"]] == ["sl***", "ne***"]
    assert "slotcar-fan" not in json.dumps(masked) and "newbie" not in json.dumps(masked)
    token = masked["users"][0]["user_id"]
    by_token = http.post("/search", json={"query": "car", "mode": "personalized", "user_id": token, "k": 5}).json()
    by_id = http.post("/search", json={"query": "car", "mode": "personalized", "user_id": "slotcar-fan", "k": 5}).json()
    assert (by_token["mode"], by_token["fallback"]) == ("personalized", False)
    assert [hit["id"] for hit in by_token["hits"]] == [hit["id"] for hit in by_id["hits"]]
    compared = http.get("/compare", params={"query": "car", "column": "personalized", "user_id": token}).json()
    assert compared["user_id"] == token and compared["columns"][0]["used_mode"] == "personalized"


def test_a_search_while_shards_are_unavailable_is_a_503_with_retry_after(os_client, opensearch_config, encoder) -> None:
    index = f"test-red-{uuid.uuid4().hex[:8]}"  # its one shard may live on no node: as while shards recover
    os_client.indices.create(
        index=index,
        params={"wait_for_active_shards": "0"},
        body={"settings": {"index.routing.allocation.require._name": "no-such-node"}},
    )
    try:
        app = create_app(
            ServeSettings(opensearch_config, alias=index, warm=False),
            search_client=SearchClient(opensearch_config, index, encoder),
        )
        with TestClient(app) as http:
            got = http.post("/search", json={"query": "car", "mode": "bm25"})
        assert got.status_code == 503, got.text
        assert got.headers["retry-after"] == "5"
        assert got.json() == {"error": "the search cluster is unavailable; try again later"}
    finally:
        os_client.indices.delete(index=index, ignore_unavailable=True)


def test_a_user_vector_of_another_dimension_is_a_clear_http_error(env: Env, os_client, opensearch_config) -> None:
    write_user_profiles(
        os_client, env.users_index, [UserProfile("other-encoder", np.array([0.6, 0.8]), 9, 1.0, "real")]
    )
    app = create_app(ServeSettings(opensearch_config, alias=env.alias, warm=False), search_client=env.search)
    try:
        with TestClient(app) as http:
            got = http.post("/search", json={"query": "car", "mode": "personalized", "user_id": "other-encoder"})
    finally:
        os_client.delete(index=env.users_index, id="other-encoder", refresh=True)
    assert got.status_code == 500
    assert "personalization is misconfigured" in got.json()["error"] and "differ in shape" in got.json()["error"]


def test_an_encoder_of_another_dimension_is_a_clear_error_at_search_and_over_http(
    env: Env, opensearch_config, tmp_path: Path
) -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Dense

    base = load_sentence_transformer("all-MiniLM-L6-v2", "cpu")
    SentenceTransformer(modules=[*base, Dense(384, 16)], device="cpu").save(str(tmp_path / "small"))
    search = SearchClient(opensearch_config, env.alias, Encoder(str(tmp_path / "small")))
    with pytest.raises(EncoderMismatchError, match=r"makes 16-dimensional vectors but .* holds 384-dimensional"):
        search.search("car", mode="semantic")
    app = create_app(ServeSettings(opensearch_config, alias=env.alias, warm=False), search_client=search)
    with TestClient(app) as http:
        for mode in ("semantic", "hybrid", "personalized"):
            got = http.post("/search", json={"query": "car", "mode": mode, "user_id": "slotcar-fan"})
            assert got.status_code == 500 and "16-dimensional" in got.json()["error"], (mode, got.text)
        assert http.post("/search", json={"query": "car", "mode": "bm25"}).status_code == 200  # no vector: fine


def test_ingest_users_cli(tmp_path: Path, os_client, opensearch_config, env: Env) -> None:
    history = tmp_path / "history.csv"
    trains = sorted(p for p in env.products if env.products[p].taxonomy_path[:2] == TRAINS)[:3]
    with history.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "product_id", "event", "timestamp"])
        writer.writerows(
            [["train-fan", pid, "click", t] for t, pid in enumerate(trains)] + [["train-fan", "gone", "click", 9]]
        )
    users_index = f"test-users-cli-{uuid.uuid4().hex[:8]}"
    catalog = tmp_path / "catalog.jsonl"
    write_catalog_jsonl(env.products.values(), catalog)
    runner = CliRunner(env={"OPENSEARCH_URL": opensearch_config.url})
    try:
        real = runner.invoke(
            cli, ["ingest-users", str(history), "--alias", env.alias, "--users-index", users_index, "--json"]
        )
        assert real.exit_code == 0, real.output
        summary = json.loads(real.stdout)
        assert (summary["users"], summary["missing_products"], summary["source"]) == (1, 1, "real")
        simulated = runner.invoke(
            cli,
            [
                "ingest-users",
                "--simulate",
                "4",
                "--catalog",
                str(catalog),
                "--alias",
                env.alias,
                "--users-index",
                users_index,
                "--json",
            ],
        )
        assert simulated.exit_code == 0, simulated.output
        assert json.loads(simulated.stdout)["encoded_products"] == 0
        stored = os_client.search(index=users_index, body={"size": 10, "_source": ["user_id", "source"]})["hits"][
            "hits"
        ]
        sources = {hit["_source"]["user_id"]: hit["_source"]["source"] for hit in stored}
        assert sources["train-fan"] == "real"
        assert {source for user, source in sources.items() if user.startswith("sim-")} == {"simulated"}
    finally:
        os_client.indices.delete(index=users_index, ignore_unavailable=True)
