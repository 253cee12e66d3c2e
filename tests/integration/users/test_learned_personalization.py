"""The learned user model on the query path, end to end on the real node: `ingest-users --history` stores the
users' last products, and a `SearchClient` (Python) and the HTTP app find the user model beside the encoder.

The encoder directory is the packaged MiniLM (its files linked) plus a `user_model/` whose weights are set by
hand: no similarity, projection, recency or zero-slot terms, so every attention logit is 0 and the zero slot
and the two history slots (`max_history=2`) weigh 1/3 each: the learned query vector is
normalize(q + (h1 + h2) / 3) with h1, h2 the user's two latest products, and alpha (the weight on the history)
is 2/3. The user `fan` bought two slot cars, then two trains: the blend moves the query towards all four, the
learned model towards the two trains only.
"""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from fastapi.testclient import TestClient

from tbhns_opensearch.api import ServeSettings, create_app
from tbhns_opensearch.cli import cli
from tbhns_opensearch.encoder import Encoder, resolve_model_path
from tbhns_opensearch.index.templates import load_template
from tbhns_opensearch.query import SearchClient, SearchResponse
from tbhns_opensearch.query.builders import build_knn
from tbhns_opensearch.query.results import parse_hits
from tbhns_opensearch.users.attention import USER_MODEL_DIR, UserAttention, UserAttentionConfig, save_user_model
from tbhns_opensearch.users.profiles import UserHistory, UserProfile
from tbhns_opensearch.users.store import fetch_product_vectors, get_user_profile, write_user_profiles
from tests.helpers import PERSONALIZATION, SLOT_CARS, TRAINS, Env, toys_search_env

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Learned:
    """The toys index, a users index written with histories, the model directory and both kinds of client."""

    env: Env
    users_index: str
    model_dir: Path
    learned: SearchClient  # user_model="auto": finds the model beside the encoder
    blend: SearchClient  # user_model=None
    fan_history: tuple[str, ...]  # the fan's products, oldest first


def _model_dir(root: Path) -> Path:
    """The packaged encoder's files, linked, plus a user model whose attention logits are all 0."""
    model_dir = root / "minilm-learned"
    model_dir.mkdir()
    for entry in Path(resolve_model_path("all-MiniLM-L6-v2")).iterdir():
        (model_dir / entry.name).symlink_to(entry)
    model = UserAttention(UserAttentionConfig(dim=384, key_dim=8, max_history=2, sim_scale=0.0, zero_bias=0.0))
    with torch.no_grad():
        model.query_proj.weight.zero_()
        model.history_proj.weight.zero_()  # recency and the zero slot's weight start at 0, W at the identity
    save_user_model(model, model_dir / USER_MODEL_DIR)
    return model_dir


def _write_history(path: Path, rows: list[tuple[str, str, int]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "product_id", "event", "timestamp"])
        writer.writerows([user, product, "purchase", t] for user, product, t in rows)
    return path


@pytest.fixture(scope="module")
def env(os_client, opensearch_config, encoder) -> Iterator[Env]:  # type: ignore[no-untyped-def]
    yield from toys_search_env(os_client, opensearch_config, encoder)


@pytest.fixture(scope="module")
def learned(os_client, opensearch_config, env: Env, tmp_path_factory) -> Iterator[Learned]:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("learned")
    model_dir = _model_dir(root)
    users_index = f"test-users-learned-{uuid.uuid4().hex[:8]}"
    by_leaf = {
        leaf: sorted(p for p in env.products if env.products[p].taxonomy_path[:2] == leaf)
        for leaf in (SLOT_CARS, TRAINS)
    }
    fan = (*by_leaf[SLOT_CARS][:2], *by_leaf[TRAINS][:2])
    with_history = _write_history(
        root / "history.csv", [("fan", pid, t) for t, pid in enumerate(fan)] + [("newbie", by_leaf[TRAINS][3], 0)]
    )
    without = _write_history(root / "older.csv", [("old-fan", pid, t) for t, pid in enumerate(by_leaf[SLOT_CARS][2:5])])
    common = ["--alias", env.alias, "--users-index", users_index, "--encoder", str(model_dir), "--json"]
    runner = CliRunner(env={"OPENSEARCH_URL": opensearch_config.url})
    try:
        summaries = [
            runner.invoke(cli, ["ingest-users", str(with_history), *common]),  # --history: the model's 2
            runner.invoke(cli, ["ingest-users", str(without), *common, "--history", "0"]),
        ]
        assert all(done.exit_code == 0 for done in summaries), [done.output for done in summaries]
        assert [(s["users"], s["histories"]) for s in (json.loads(done.stdout) for done in summaries)] == [
            (2, 2),
            (1, 0),
        ]
        query_encoder = Encoder(str(model_dir))
        clients = {
            name: SearchClient(
                opensearch_config,
                env.alias,
                query_encoder,
                users_index=users_index,
                personalization=PERSONALIZATION,
                user_model=user_model,
            )
            for name, user_model in (("learned", "auto"), ("blend", None))
        }
        yield Learned(env, users_index, model_dir, clients["learned"], clients["blend"], fan)
    finally:
        os_client.indices.delete(index=users_index, ignore_unavailable=True)


def _ids(response: SearchResponse) -> list[str]:
    return [hit.id for hit in response.hits]


def _leaf_share(learned: Learned, response: SearchResponse, leaf: tuple[str, ...]) -> int:
    return sum(learned.env.products[hit.id].taxonomy_path[:2] == leaf for hit in response.hits)


def test_the_users_index_stores_the_latest_products_most_recent_first(os_client, learned: Learned) -> None:
    vectors = fetch_product_vectors(os_client, learned.env.alias, learned.fan_history)
    latest = learned.fan_history[:1:-1]  # the two trains, the last bought first
    fan = get_user_profile(os_client, learned.users_index, "fan")
    assert fan is not None and fan.event_count == 4
    assert fan.history == UserHistory(latest, (1, 2), np.stack([vectors[pid] for pid in latest]))
    old_fan = get_user_profile(os_client, learned.users_index, "old-fan")
    assert old_fan is not None and old_fan.event_count == 3 and old_fan.history is None


def test_an_older_users_index_takes_the_history_fields(os_client) -> None:
    users_index = f"test-users-older-{uuid.uuid4().hex[:8]}"
    template = load_template("users")
    del template["mappings"]["_source"]  # histories were kept in `_source` then
    for name in ("history_ids", "history_orders", "history_bytes", "history_digest"):
        del template["mappings"]["properties"][name]  # the index as written before histories
    os_client.indices.create(index=users_index, body=template)
    profile = UserProfile(
        "u", np.float32([0.6, 0.8]), 3, 2.0, "real", UserHistory(("p",), (1,), np.float32([[0.8, 0.6]]))
    )
    try:
        write_user_profiles(os_client, users_index, [profile])  # strict mapping: needs the fields put first
        assert get_user_profile(os_client, users_index, "u") == profile
    finally:
        os_client.indices.delete(index=users_index, ignore_unavailable=True)


@pytest.mark.parametrize("mode", ["personalized", "hybrid"])
def test_the_learned_vector_is_the_one_the_model_gives(os_client, learned: Learned, mode: str) -> None:
    response = learned.learned.search("car", user_id="fan", mode=mode, k=10)
    assert (response.mode, response.fallback, response.personalization) == (mode, False, "learned")
    assert response.alpha == pytest.approx(2 / 3, abs=1e-6)
    if mode == "personalized":  # every logit 0: normalize(q + (h_train2 + h_train1) / 3)
        vectors = fetch_product_vectors(os_client, learned.env.alias, learned.fan_history[2:])
        query = learned.learned.query_encoder.encode("car")
        expected = query + sum(vectors.values()) / 3
        knn = os_client.search(index=learned.env.alias, body=build_knn(expected / np.linalg.norm(expected), 10))
        assert _ids(response) == [hit.id for hit in parse_hits(knn)]


@pytest.mark.parametrize("mode", ["personalized", "hybrid"])
def test_learned_personalization_ranks_otherwise_than_the_blend(learned: Learned, mode: str) -> None:
    """The blend moves towards the slot cars and trains the fan bought; the model towards the two latest, trains."""
    learned_response = learned.learned.search("car", user_id="fan", mode=mode, k=10)
    blended = learned.blend.search("car", user_id="fan", mode=mode, k=10)
    assert (blended.personalization, blended.alpha) == ("blend", 0.3)
    assert _ids(learned_response) != _ids(blended)
    assert _leaf_share(learned, learned_response, TRAINS) > _leaf_share(learned, blended, TRAINS)


@pytest.mark.parametrize(
    ("user_id", "method", "reason"),
    [
        (None, None, "no user_id given"),
        ("nobody", None, "unknown user 'nobody': no stored history"),
        (
            "newbie",
            None,
            "user 'newbie' has 1 events, fewer than min_history=3",
        ),  # stored with a history, yet too short
        ("old-fan", "blend", None),  # enough events, no stored history: the fixed blend
    ],
)
def test_each_fallback_says_how_it_personalized(
    learned: Learned, user_id: str | None, method: str | None, reason: str | None
) -> None:
    personal = learned.learned.search("car", user_id=user_id, mode="personalized", k=10)
    assert (personal.personalization, personal.fallback_reason, personal.fallback) == (method, reason, method is None)
    assert personal.mode == ("personalized" if method else "semantic")
    hybrid = learned.learned.search("car", user_id=user_id, mode="hybrid", k=10)
    asked = user_id is not None  # hybrid without a user is no fallback
    assert (hybrid.personalization, hybrid.fallback_reason, hybrid.fallback) == (
        method,
        reason if asked else None,
        method is None and asked,
    )
    if method == "blend":
        assert (
            personal.alpha == 0.3
            and personal.hits == learned.blend.search("car", user_id=user_id, mode="personalized", k=10).hits
        )
    else:
        assert personal.hits == learned.learned.search("car", mode="semantic", k=10).hits


def test_the_http_api_answers_as_the_python_client(opensearch_config, learned: Learned) -> None:
    """The app's own client (from ServeSettings: the encoder directory, user model "auto") and the Python one."""
    settings = ServeSettings(
        opensearch_config,
        alias=learned.env.alias,
        users_index=learned.users_index,
        encoder=str(learned.model_dir),
        personalization=PERSONALIZATION,
        warm=False,
    )
    requests = [
        {"query": "car", "mode": mode, "user_id": user, "k": 8}
        for mode in ("personalized", "hybrid")
        for user in ("fan", "old-fan", "newbie")
    ]
    with TestClient(create_app(settings)) as http:
        for request in requests:
            got = http.post("/search", json=request)
            assert got.status_code == 200, got.text
            body = got.json()
            python = learned.learned.search(request["query"], user_id=request["user_id"], mode=request["mode"], k=8)
            assert [hit["id"] for hit in body["hits"]] == _ids(python), request
            assert (body["personalization"], body["alpha"], body["fallback_reason"]) == (
                python.personalization,
                python.alpha,
                python.fallback_reason,
            ), request
        assert (
            http.get("/search", params={"query": "car", "user_id": "fan", "mode": "personalized"}).json()[
                "personalization"
            ]
            == "learned"
        )


def test_a_held_history_is_not_read_again_until_it_changes(os_client, opensearch_config, learned: Learned) -> None:
    """With the profile read on every search, the history's vectors travel once: later reads leave them out
    (no `docvalue_fields`) and reuse them while the stored digest agrees; a rewritten history is read whole."""
    vectors = fetch_product_vectors(os_client, learned.env.alias, learned.fan_history)
    cars, trains = learned.fan_history[:2], learned.fan_history[2:]

    def mover(ids: tuple[str, ...]) -> UserProfile:
        history = UserHistory(ids, (1, 2), np.stack([vectors[pid] for pid in ids]))
        return UserProfile("mover", history.vectors[0], 4, 2.0, "real", history)

    write_user_profiles(os_client, learned.users_index, [mover(cars)])
    client = SearchClient(
        opensearch_config,
        learned.env.alias,
        str(learned.model_dir),
        users_index=learned.users_index,
        personalization=PERSONALIZATION,
        user_ttl_s=0,
    )
    sent: list[list[dict]] = []
    msearch = client.client.msearch
    client.client.msearch = lambda body, **kw: sent.append(body) or msearch(body=body, **kw)  # type: ignore[method-assign]
    first = client.search("car", user_id="mover", mode="personalized", k=10)  # a first read: one get, whole
    again = client.search("car", user_id="mover", mode="personalized", k=10)
    assert (first.personalization, again.personalization) == ("learned", "learned")
    assert _ids(again) == _ids(first) and len(sent) == 1
    assert sent[0][-1] == {"query": {"ids": {"values": ["mover"]}}, "size": 1}  # the users item of its msearch
    write_user_profiles(os_client, learned.users_index, [mover(trains)])
    moved = client.search("car", user_id="mover", mode="personalized", k=10)
    fresh = SearchClient(
        opensearch_config,
        learned.env.alias,
        str(learned.model_dir),
        users_index=learned.users_index,
        personalization=PERSONALIZATION,
    )
    assert _ids(moved) == _ids(fresh.search("car", user_id="mover", mode="personalized", k=10)) != _ids(first)
