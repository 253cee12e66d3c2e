"""User vectors, blending and the explicit fallback, with hand-computed expectations."""

import json
from datetime import UTC

import numpy as np
import pytest

from tbhns_opensearch.errors import PersonalizationError
from tbhns_opensearch.users.attention import QueryTimeUserModel, UserAttention, UserAttentionConfig
from tbhns_opensearch.users.blend import blend, personalize
from tbhns_opensearch.users.events import UserEvent, read_history
from tbhns_opensearch.users.profiles import PersonalizationConfig, UserHistory, UserProfile, build_user_profiles
from tbhns_opensearch.users.tuning import PersonalizationCase, recall_at_k, tune_alpha

E1, E2, E3 = np.eye(3)
VECTORS = {"p1": E1, "p2": E2, "p3": E3}


def _profile(events: int, vector: np.ndarray = E2) -> UserProfile:
    return UserProfile("u1", vector, events, 0.0, "real")


def test_blend_is_the_normalized_weighted_sum() -> None:
    expected = np.array([0.75, 0.25, 0.0]) / np.hypot(0.75, 0.25)
    np.testing.assert_allclose(blend(E1, E2, 0.25), expected)
    np.testing.assert_array_equal(blend(E1, E2, 0.0), E1)


def test_blend_rejects_bad_alpha_and_shapes() -> None:
    with pytest.raises(PersonalizationError, match=r"alpha must be in \[0, 1\].*1.5"):
        blend(E1, E2, 1.5)
    with pytest.raises(PersonalizationError, match="differ in shape"):
        blend(E1, np.ones(4), 0.5)


def test_fallback_below_min_history_returns_exactly_the_query_vector() -> None:
    query = np.array([0.6, 0.8, 0.0], dtype=np.float32)
    result = personalize(query, "u1", _profile(events=2), PersonalizationConfig(min_history=3, alpha=0.5))
    assert result.fallback is True
    assert result.vector is query
    assert result.alpha == 0.0
    assert result.reason == "user 'u1' has 2 events, fewer than min_history=3"


@pytest.mark.parametrize(
    ("user_id", "reason"), [(None, "no user_id given"), ("ghost", "unknown user 'ghost': no stored history")]
)
def test_fallback_without_a_profile(user_id: str | None, reason: str) -> None:
    result = personalize(E1, user_id, None, PersonalizationConfig())
    assert (result.fallback, result.reason, result.vector is E1) == (True, reason, True)


def test_enough_history_blends_with_the_configured_alpha() -> None:
    result = personalize(E1, "u1", _profile(events=3), PersonalizationConfig(min_history=3, alpha=0.5))
    assert (result.fallback, result.reason, result.alpha) == (False, None, 0.5)
    np.testing.assert_allclose(result.vector, [2**-0.5, 2**-0.5, 0.0])


@pytest.mark.parametrize(("stored", "index"), [("a1", "b2"), ("b2", "a1")])
def test_a_profile_from_another_vector_space_than_the_index_falls_back(stored: str, index: str) -> None:
    """A profile built from another encoder's product vectors than the index holds (the catalog rebuilt with a
    new model since `ingest-users` ran) would blend two spaces: before, it was blended all the same."""
    profile = UserProfile("u1", E2, 5, 0.0, "real", space=stored)
    result = personalize(E1, "u1", profile, PersonalizationConfig(), space=index)
    assert (result.fallback, result.vector is E1) == (True, True)
    assert result.reason == (
        "the stored profile of user 'u1' was built from another encoder's product vectors than the index holds "
        "now; run `tbhns ingest-users` again"
    )


@pytest.mark.parametrize(("stored", "index"), [("a1", "a1"), (None, "a1"), ("a1", None)])
def test_a_profile_of_the_same_or_an_unknown_space_personalizes(stored: str | None, index: str | None) -> None:
    profile = UserProfile("u1", E2, 5, 0.0, "real", space=stored)
    assert personalize(E1, "u1", profile, PersonalizationConfig(), space=index).method == "blend"


def test_user_vector_weights_events_by_type_and_recency() -> None:
    config = PersonalizationConfig(event_weights={"purchase": 1.0, "click": 0.2}, half_life=10.0)
    events = [
        UserEvent("u1", "p1", "purchase", 10.0),
        UserEvent("u1", "p2", "click", 0.0),
        UserEvent("u1", "unknown-product", "purchase", 11.0),
    ]
    profile = build_user_profiles(events, VECTORS, config)["u1"]
    expected = np.array([1.0, 0.2 * 0.5, 0.0])  # the click is one half-life older than the latest used event
    np.testing.assert_allclose(profile.vector, expected / np.linalg.norm(expected))
    assert (profile.event_count, profile.last_event, profile.source) == (2, 10.0, "real")


def test_user_vector_without_decay_is_the_event_weighted_mean() -> None:
    config = PersonalizationConfig(half_life=None)
    events = [UserEvent("u1", "p1", "purchase", 0.0), UserEvent("u1", "p3", "add_to_cart", 1e9)]
    np.testing.assert_allclose(
        build_user_profiles(events, VECTORS, config)["u1"].vector, np.array([1.0, 0.0, 0.5]) / np.hypot(1.0, 0.5)
    )


def test_profiles_reject_unknown_events_and_mixed_sources() -> None:
    with pytest.raises(
        PersonalizationError, match=r"'wishlist'.*valid types are \['add_to_cart', 'click', 'purchase'\]"
    ):
        build_user_profiles([UserEvent("u1", "p1", "wishlist", 0.0)], VECTORS, PersonalizationConfig())
    mixed = [UserEvent("u1", "p1", "click", 0.0), UserEvent("u1", "p2", "click", 1.0, "simulated")]
    with pytest.raises(PersonalizationError, match="mixes real and simulated"):
        build_user_profiles(mixed, VECTORS, PersonalizationConfig())


def test_config_rejects_bad_values() -> None:
    with pytest.raises(PersonalizationError, match="min_history must be an integer >= 1, got 0"):
        PersonalizationConfig(min_history=0)
    with pytest.raises(PersonalizationError, match="positive weight"):
        PersonalizationConfig(event_weights={"click": -1.0})
    with pytest.raises(PersonalizationError, match="half_life"):
        PersonalizationConfig(half_life=0)


def test_read_history_csv_and_jsonl(tmp_path) -> None:
    csv_file = tmp_path / "history.csv"
    csv_file.write_text("user_id,product_id,event,timestamp\nu1,p1,Purchase,2024-01-01T00:00:00Z\nu1,p2,click,5\n")
    jsonl_file = tmp_path / "history.jsonl"
    jsonl_file.write_text(
        json.dumps({"user_id": "s1", "product_id": "p3", "event": "click", "timestamp": 7, "source": "simulated"})
        + "\n\n"
    )
    assert read_history(csv_file) == [
        UserEvent("u1", "p1", "purchase", 1704067200.0),
        UserEvent("u1", "p2", "click", 5.0),
    ]
    assert read_history(jsonl_file) == [UserEvent("s1", "p3", "click", 7.0, "simulated")]


def test_read_history_names_the_bad_line(tmp_path) -> None:
    bad = tmp_path / "history.csv"
    bad.write_text("user_id,product_id,event\nu1,p1,click\n")
    with pytest.raises(PersonalizationError, match=r"the header lacks columns \['timestamp'\]"):
        read_history(bad)
    bad.write_text("user_id,product_id,event,timestamp\nu1,p1,click,yesterday\n")
    with pytest.raises(PersonalizationError, match=r"history.csv:2: timestamp 'yesterday'"):
        read_history(bad)


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity"])
def test_a_timestamp_that_is_no_finite_number_is_refused_naming_the_line(tmp_path, value: str) -> None:
    csv_file, jsonl_file = tmp_path / "history.csv", tmp_path / "history.jsonl"
    csv_file.write_text(f"user_id,product_id,event,timestamp\nu1,p1,click,1\nnanuser,p1,click,{value}\n")
    jsonl_file.write_text('{"user_id": "nanuser", "product_id": "p1", "event": "click", "timestamp": NaN}\n')
    with pytest.raises(PersonalizationError, match=rf"history.csv:3: timestamp '{value}' is not a finite number"):
        read_history(csv_file)
    with pytest.raises(PersonalizationError, match=r"history.jsonl:1: timestamp nan is not a finite number"):
        read_history(jsonl_file)
    with pytest.raises(PersonalizationError, match="finite"):
        UserEvent("u", "p", "click", float(value))


def test_a_history_that_is_not_utf8_is_one_error_naming_the_byte(tmp_path) -> None:
    latin1 = tmp_path / "history.csv"
    latin1.write_bytes("user_id,product_id,event,timestamp\nren\u00e9,p1,click,1\n".encode("latin-1"))
    with pytest.raises(PersonalizationError, match=r"byte 0xe9 .* is not UTF-8; save the file as UTF-8"):
        read_history(latin1)


def test_tune_alpha_finds_the_user_signal() -> None:
    """The plain query finds the distractor; the user's taste (dimension 3) lifts the target above it."""
    ids = ["distractor", "target"]
    matrix = np.array([[1.0, 0.0, 0.0], [0.8, 0.0, 0.6]])
    case = PersonalizationCase("u1", E1, _profile(events=5, vector=E3), frozenset({"target"}))
    assert recall_at_k([case], ids, matrix, PersonalizationConfig(alpha=0.0), k=1).tolist() == [0.0]
    tuning = tune_alpha([case], ids, matrix, PersonalizationConfig(), grid=(0.0, 0.4, 0.8), k=1)
    assert tuning.recall == {0.0: 0.0, 0.4: 1.0, 0.8: 1.0}
    assert tuning.best_alpha == 0.4  # ties go to the smaller alpha


def test_a_stored_profile_with_a_null_last_event_still_reads() -> None:
    """Older versions stored a nan timestamp, which the serializer writes as null; reading it raised TypeError
    and every personalized search for that user failed with a traceback or HTTP 500."""
    from tbhns_opensearch.users.store import profile_from_document

    stored = {"user_id": "nanuser", "vector": [0.6, 0.8], "event_count": 3, "last_event": None, "source": "real"}
    profile = profile_from_document(stored)
    assert profile.user_id == "nanuser" and np.isnan(profile.last_event)
    assert profile.vector.tolist() == np.float32([0.6, 0.8]).tolist()


def test_the_history_is_the_latest_products_with_their_orders_before() -> None:
    """Four orders (timestamps 5 > 4 > 3 > 1); within an order the file's order; a product without a vector is
    left out, but its order (4: only that product) still counts."""
    events = [
        UserEvent("u1", "p1", "purchase", 1.0),
        UserEvent("u1", "p2", "purchase", 5.0),
        UserEvent("u1", "gone", "purchase", 4.0),
        UserEvent("u1", "p3", "purchase", 3.0),
        UserEvent("u1", "p1", "click", 5.0),
        UserEvent("u2", "p3", "click", 7.0),
    ]
    profiles = build_user_profiles(events, VECTORS, PersonalizationConfig(history_size=3))
    history = profiles["u1"].history
    assert history is not None and (history.ids, history.orders_before) == (("p2", "p1", "p3"), (1, 1, 3))
    np.testing.assert_array_equal(history.vectors, np.float32([E2, E1, E3]))
    assert history.vectors.dtype == np.float32
    everything = build_user_profiles(events, VECTORS, PersonalizationConfig(history_size=50))["u1"].history
    assert everything is not None and (everything.ids, everything.orders_before) == (
        ("p2", "p1", "p3", "p1"),
        (1, 1, 3, 4),
    )
    assert profiles["u2"].history == UserHistory(("p3",), (1,), np.float32([E3]))
    assert build_user_profiles(events, VECTORS, PersonalizationConfig())["u1"].history is None  # history_size 0


def test_a_history_and_the_history_size_are_checked() -> None:
    with pytest.raises(PersonalizationError, match="history_size must be an integer >= 0.*-1"):
        PersonalizationConfig(history_size=-1)
    with pytest.raises(PersonalizationError, match=r"got 2 ids, 1 orders_before and vectors of shape \(2, 3\)"):
        UserHistory(("a", "b"), (1,), np.ones((2, 3)))
    with pytest.raises(PersonalizationError, match="orders_before must be >= 1"):
        UserHistory(("a",), (0,), np.ones((1, 3)))


def test_profiles_differ_by_their_history() -> None:
    history = UserHistory(("p1",), (1,), np.float32([E1]))
    with_history = UserProfile("u1", E2, 3, 0.0, "real", history)
    assert with_history == UserProfile("u1", E2, 3, 0.0, "real", UserHistory(("p1",), (1,), np.float32([E1])))
    assert with_history != _profile(events=3)
    assert with_history != UserProfile("u1", E2, 3, 0.0, "real", UserHistory(("p1",), (2,), np.float32([E1])))
    assert with_history != UserProfile("u1", E2, 3, 0.0, "real", UserHistory(("p1",), (1,), np.float32([E3])))


def _user_model(zero_bias: float) -> QueryTimeUserModel:
    return UserAttention(UserAttentionConfig(dim=3, key_dim=2, zero_bias=zero_bias)).at_query_time()


def test_a_user_model_and_a_stored_history_personalize_learned() -> None:
    """All weight on the history (zero slot bias -1e4) and W = I: normalize(q + h), alpha = 1."""
    profile = UserProfile("u1", E2, 3, 0.0, "real", UserHistory(("p3",), (1,), np.float32([E3])))
    config = PersonalizationConfig(min_history=3, alpha=0.5)
    result = personalize(np.float32(E1), "u1", profile, config, user_model=_user_model(zero_bias=-1e4))
    assert (result.method, result.fallback, result.reason, result.alpha) == ("learned", False, None, 1.0)
    np.testing.assert_allclose(result.vector, [2**-0.5, 0.0, 2**-0.5], atol=1e-6)  # E3, not the blend's E2
    query = np.float32(E1)
    unmoved = personalize(query, "u1", profile, config, user_model=_user_model(zero_bias=1e4))
    assert (unmoved.method, unmoved.alpha, unmoved.vector is query) == ("learned", 0.0, True)


@pytest.mark.parametrize("history", [None, UserHistory((), (), np.zeros((0, 3)))])
def test_without_a_stored_history_or_a_user_model_it_blends(history: UserHistory | None) -> None:
    config = PersonalizationConfig(min_history=3, alpha=0.5)
    blended = personalize(
        E1, "u1", UserProfile("u1", E2, 3, 0.0, "real", history), config, user_model=_user_model(-1e4)
    )
    assert (blended.method, blended.fallback, blended.reason, blended.alpha) == ("blend", False, None, 0.5)
    np.testing.assert_allclose(blended.vector, [2**-0.5, 2**-0.5, 0.0])
    with_history = UserProfile("u1", E2, 3, 0.0, "real", UserHistory(("p3",), (1,), np.float32([E3])))
    assert personalize(E1, "u1", with_history, config).method == "blend"  # no user model


@pytest.mark.parametrize(
    ("user_id", "events", "reason"),
    [
        (None, 9, "no user_id given"),
        ("ghost", None, "unknown user 'ghost': no stored history"),
        ("u1", 2, "user 'u1' has 2 events, fewer than min_history=3"),
    ],
)
def test_the_fallbacks_hold_with_a_user_model(user_id: str | None, events: int | None, reason: str) -> None:
    history = UserHistory(("p3",), (1,), np.float32([E3]))
    profile = None if events is None else UserProfile("u1", E2, events, 0.0, "real", history)
    query = np.float32(E1)
    result = personalize(query, user_id, profile, PersonalizationConfig(min_history=3), user_model=_user_model(-1e4))
    assert (result.method, result.fallback, result.reason, result.alpha, result.vector is query) == (
        "plain",
        True,
        reason,
        0.0,
        True,
    )


def test_a_users_document_round_trips_with_and_without_a_history() -> None:
    from datetime import datetime

    from tbhns_opensearch.users.store import profile_from_document, user_document

    updated = datetime(2026, 1, 1, tzinfo=UTC)
    rows = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    history = UserHistory(("a", "b", "c"), (1, 1, 7), rows)
    vector = np.float32([0.5, 0.5, 0.5, 0.5])
    with_history = UserProfile("u1", vector, 4, 9.0, "real", history)
    document = user_document(with_history, updated)
    assert (document["history_ids"], document["history_orders"]) == (["a", "b", "c"], [1, 1, 7])
    assert len(document["history_bytes"]) == 4 * -(-3 * 4 * 4 // 3)  # base64 of n x dim float32
    assert profile_from_document(document) == with_history
    plain = UserProfile("u2", vector, 4, 9.0, "simulated")
    assert not {"history_ids", "history_orders", "history_bytes"} & set(user_document(plain, updated))
    assert profile_from_document(user_document(plain, updated)) == plain
    with pytest.raises(
        PersonalizationError, match=r"user 'u1': the stored history has 2 ids of dimension 4 but 12 vector values"
    ):
        profile_from_document({**document, "history_ids": ["a", "b"], "history_orders": [1, 1]})


def test_a_profile_read_without_its_vectors_reuses_the_history_it_knows() -> None:
    from datetime import datetime

    from tbhns_opensearch.users.store import HistoryNotRead, profile_from_document, profile_search, user_document

    history = UserHistory(("p2", "p1"), (1, 2), np.float32([[0.0, 1.0], [1.0, 0.0]]))
    document = user_document(
        UserProfile("u", np.float32([0.6, 0.8]), 3, 2.0, "real", history), datetime(2026, 1, 1, tzinfo=UTC)
    )
    light = {name: value for name, value in document.items() if name != "history_bytes"}  # no docvalue_fields
    assert "docvalue_fields" not in profile_search("u", history) and "docvalue_fields" in profile_search("u")
    assert profile_from_document(light, history).history is history
    changed = UserHistory(("p3", "p1"), (1, 2), np.float32([[0.6, 0.8], [1.0, 0.0]]))
    with pytest.raises(HistoryNotRead):
        profile_from_document(light, changed)
    with pytest.raises(HistoryNotRead):
        profile_from_document(light)
    assert profile_from_document(document, changed).history == history  # a whole document is read as stored
