"""The learned user model (attention with a zero slot) and its training, on hand-made vectors and order lines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tbhns_opensearch.catalog.product import Product
from tbhns_opensearch.errors import PersonalizationError
from tbhns_opensearch.users.attention import (
    USER_MODEL_DIR,
    UserAttention,
    UserAttentionConfig,
    history_tensors,
    load_user_model,
    personalize_queries,
    recency_bucket,
    save_user_model,
    user_model_beside,
)
from tbhns_opensearch.users.attention_training import (
    AttentionTrainConfig,
    ProductSpace,
    TaxonomyNegatives,
    draw_examples,
    order_queries,
    run_epoch,
    train_user_model,
)
from tbhns_opensearch.users.profiles import UserHistory
from tbhns_opensearch.users.sequences import read_order_sequences
from tests.unit.users.test_sequences import CATALOG as SEQUENCE_CATALOG
from tests.unit.users.test_sequences import LINES, _write

DIM = 8
# the order lines of test_user_sequences (user 1: orders 1-3, target 3; user 2: orders 1-2), with a fuller
# catalog: dairy eggs > milk: a b e; dairy eggs > cheese: d f; beverages > tea: c g; beverages > soda: h
CATALOG = [
    *SEQUENCE_CATALOG,
    Product("e", "Goat Milk", taxonomy_path=("dairy eggs", "milk")),
    Product("f", "Brie", taxonomy_path=("dairy eggs", "cheese")),
    Product("g", "Black Tea", taxonomy_path=("beverages", "tea")),
    Product("h", "Cola", taxonomy_path=("beverages", "soda")),
]


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def _space(products: list[Product], seed: int = 0) -> ProductSpace:
    rng = np.random.default_rng(seed)
    paths = [p.taxonomy_path for p in products if p.taxonomy_path]
    texts = sorted({path[-1] for path in paths} | {" > ".join(path) for path in paths})
    return ProductSpace(
        tuple(products),
        _unit(rng.normal(size=(len(products), DIM))),
        dict(zip(texts, _unit(rng.normal(size=(len(texts), DIM))))),
    )


def _model(**overrides: float) -> UserAttention:
    config = UserAttentionConfig(dim=DIM, key_dim=4, max_history=5)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = UserAttention(config)
    with torch.no_grad():
        for name, value in overrides.items():
            getattr(model, name).bias.fill_(value)
    return model.eval()


def _tensors(histories: list[list[tuple[int, int]]], matrix: np.ndarray, max_history: int = 5):
    return history_tensors(histories, torch.from_numpy(matrix), max_history)


def test_recency_buckets_by_hand() -> None:
    assert [recency_bucket(n) for n in (1, 2, 3, 4, 5, 8, 9, 16, 17, 32, 33, 400)] == [
        0,
        1,
        2,
        2,
        3,
        3,
        4,
        4,
        5,
        5,
        6,
        6,
    ]
    _, buckets, mask = _tensors([[(0, 1), (1, 4), (2, 40)]], np.eye(3, dtype=np.float32), max_history=4)
    assert buckets.tolist() == [[0, 2, 6, 0]] and mask.tolist() == [[True, True, True, False]]
    with pytest.raises(PersonalizationError, match="orders_before must be an integer >= 1"):
        recency_bucket(0)


def test_all_weight_on_the_zero_slot_gives_the_plain_query_exactly() -> None:
    space = _space(CATALOG)
    query = torch.from_numpy(_unit(np.random.default_rng(1).normal(size=(3, DIM))))
    model = _model(zero_slot=1e4)  # the zero slot's logit dwarfs every history logit
    tensors = _tensors([[(0, 1), (3, 2)], [(5, 1)], [(1, 9)]], space.matrix)
    weights = model.attention(query, *tensors)
    assert weights[:, 0].tolist() == [1.0, 1.0, 1.0]
    with torch.no_grad():
        assert torch.equal(model(query, *tensors), query)


def test_an_empty_history_gives_the_plain_query_exactly() -> None:
    queries = _unit(np.random.default_rng(2).normal(size=(2, DIM)))
    out = personalize_queries(_model(), queries, [[], []], _space(CATALOG).matrix)
    assert np.array_equal(out, queries)


def test_a_history_of_one_product_gives_normalize_q_plus_h() -> None:
    space = _space(CATALOG)
    query = _unit(np.random.default_rng(3).normal(size=(1, DIM)))
    out = personalize_queries(_model(zero_slot=-1e4), query, [[(2, 3)]], space.matrix)  # W = I at init
    expected = _unit(query[0] + space.matrix[2])
    np.testing.assert_allclose(out[0], expected, atol=1e-6)


def test_attention_weights_sum_to_one_and_padding_gets_none() -> None:
    space = _space(CATALOG)
    query = torch.from_numpy(_unit(np.ones((2, DIM))))
    with torch.no_grad():
        weights = _model().attention(query, *_tensors([[(0, 1), (1, 2)], [(4, 3)]], space.matrix))
    torch.testing.assert_close(weights.sum(1), torch.ones(2))
    assert weights[0, 3:].tolist() == [0.0, 0.0, 0.0] and weights[1, 2:].tolist() == [0.0] * 4


def test_save_and_load_give_identical_outputs(tmp_path: Path) -> None:
    space = _space(CATALOG)
    model = _model()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    queries = _unit(np.random.default_rng(4).normal(size=(3, DIM)))
    histories = [[(0, 1), (3, 2)], [], [(7, 20)]]
    save_user_model(model, tmp_path / "user")
    loaded = load_user_model(tmp_path / "user")
    assert loaded.config == model.config
    assert np.array_equal(
        personalize_queries(loaded, queries, histories, space.matrix),
        personalize_queries(model, queries, histories, space.matrix),
    )
    assert sorted(p.name for p in (tmp_path / "user").iterdir()) == ["user_model.json", "user_model.safetensors"]


def test_loading_from_a_folder_without_a_model_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(PersonalizationError, match="save_user_model"):
        load_user_model(tmp_path)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("config_not_json", r"user_model.json is not a tbhns-user-attention/1 config; train the user model again"),
        ("config_not_utf8", r"user_model.json is not a tbhns-user-attention/1 config"),
        ("config_a_list", r"user_model.json is not a tbhns-user-attention/1 config"),
        ("config_scale_text", r"UserAttentionConfig.sim_scale must be finite, got 'ten'"),
        ("weights_cut", r"user_model.safetensors does not hold the weights of the model user_model.json describes"),
        ("weights_of_another_shape", r"does not hold the weights .*; train the user model again or copy the whole"),
    ],
)
def test_a_damaged_user_model_is_one_error_naming_the_file_and_fix(damage: str, message: str, tmp_path: Path) -> None:
    save_user_model(_model(), tmp_path / "user")
    config, weights = tmp_path / "user" / "user_model.json", tmp_path / "user" / "user_model.safetensors"
    stored = json.loads(config.read_text())
    if damage == "config_not_json":
        config.write_text("{")
    elif damage == "config_not_utf8":
        config.write_bytes(b"\xff\xfe")
    elif damage == "config_a_list":
        config.write_text("[1]")
    elif damage == "config_scale_text":
        config.write_text(json.dumps({**stored, "sim_scale": "ten"}))
    elif damage == "weights_cut":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a copy stopped half way
    else:
        save_user_model(UserAttention(UserAttentionConfig(dim=DIM, key_dim=3)), tmp_path / "other")
        weights.write_bytes((tmp_path / "other" / "user_model.safetensors").read_bytes())
    with pytest.raises(PersonalizationError, match=message) as caught:
        load_user_model(tmp_path / "user")
    assert "\n" not in str(caught.value)


def _history(rows: list[int], orders: list[int], matrix: np.ndarray) -> UserHistory:
    return UserHistory(tuple(f"p{row}" for row in rows), tuple(orders), matrix[rows])


def test_one_query_with_all_weight_on_the_zero_slot_is_the_query_itself() -> None:
    space = _space(CATALOG)
    query = _unit(np.random.default_rng(5).normal(size=DIM))
    vector, weight = _model(zero_slot=1e4).at_query_time().personalize(query, _history([0, 3], [1, 2], space.matrix))
    assert vector is query and weight == 0.0
    empty = UserHistory((), (), np.zeros((0, DIM), dtype=np.float32))
    assert _model(zero_slot=-1e4).at_query_time().personalize(query, empty) == (query, 0.0)


def test_one_query_with_one_product_is_normalize_q_plus_h() -> None:
    space = _space(CATALOG)
    query = _unit(np.random.default_rng(6).normal(size=DIM))
    vector, weight = (
        _model(zero_slot=-1e4).at_query_time().personalize(query, _history([2], [3], space.matrix))
    )  # W = I
    np.testing.assert_allclose(vector, _unit(query + space.matrix[2]), atol=1e-6)
    assert weight == 1.0 and vector.dtype == np.float32


def test_one_query_equals_the_batch_forward_and_cuts_to_max_history() -> None:
    """Trained-looking weights (every parameter moved), a history longer than max_history=5 with every bucket."""
    space = _space(CATALOG)
    model = _model()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter, generator=torch.Generator().manual_seed(7)))
    query = _unit(np.random.default_rng(7).normal(size=DIM))
    rows, orders = [7, 0, 3, 5, 1, 6, 2], [1, 2, 4, 8, 16, 33, 40]
    vector, weight = model.at_query_time().personalize(query, _history(rows, orders, space.matrix))
    expected = personalize_queries(model, query[None], [list(zip(rows, orders))], space.matrix)[0]
    np.testing.assert_allclose(vector, expected, atol=1e-6)
    with torch.no_grad():
        tensors = _tensors([list(zip(rows, orders))], space.matrix)
        zero_slot = model.attention(torch.from_numpy(query[None]), *tensors)[0, 0].item()
    assert weight == pytest.approx(1 - zero_slot, abs=1e-6) and 0 < weight < 1
    longer = model.at_query_time().personalize(query, _history([*rows[:5], 4, 4], [*orders[:5], 1, 1], space.matrix))[0]
    np.testing.assert_array_equal(
        longer, model.at_query_time().personalize(query, _history(rows[:5], orders[:5], space.matrix))[0]
    )


def test_one_query_of_another_dimension_says_to_rebuild_the_users() -> None:
    space = _space(CATALOG)
    query = _unit(np.ones(DIM))
    with pytest.raises(PersonalizationError, match=r"takes 8-dimensional vectors.*\(4,\).*rebuild the users"):
        _model().at_query_time().personalize(query, UserHistory(("p",), (1,), np.ones((1, 4))))
    with pytest.raises(PersonalizationError, match=r"query of shape \(4,\)"):
        _model().at_query_time().personalize(np.ones(4, dtype=np.float32), _history([0], [1], space.matrix))


def test_the_user_model_beside_an_encoder_directory(tmp_path: Path) -> None:
    assert user_model_beside(str(tmp_path)) is None  # an encoder directory without a user model
    assert user_model_beside("all-MiniLM-L6-v2") is None  # the packaged encoder has none
    model = _model()
    save_user_model(model, tmp_path / USER_MODEL_DIR)
    loaded = user_model_beside(str(tmp_path))
    assert loaded is not None and loaded.config == model.config and not loaded.training
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))


def test_order_queries_take_every_older_order_as_history_never_the_target(tmp_path: Path) -> None:
    space = _space(CATALOG)
    users = read_order_sequences(_write(tmp_path, LINES), CATALOG).users
    row = space.row_of
    last = order_queries(users, space)
    assert [(q.user_id, q.target, q.text, sorted(q.relevant)) for q in last] == [
        ("1", 0, "milk", [row["a"]]),
        ("1", 0, "tea", [row["c"]]),
        ("2", 0, "cheese", [row["d"]]),
    ]
    assert last[0].history == ((row["b"], 1), (row["a"], 1), (row["a"], 2))  # most recent first, "x" dropped
    assert last[0].order == frozenset({row["a"], row["c"], row["n"]})  # "n" has no aisle, yet is never a negative
    examples = order_queries(users, space, every_order=True)
    earlier = [q for q in examples if q.target > 0]  # user 1's order 2 (user 2's order 1 has no older order)
    assert [(q.user_id, q.target, q.text, sorted(q.relevant), q.history, q.history_orders) for q in earlier] == [
        ("1", 1, "milk", sorted([row["a"], row["b"]]), ((row["a"], 1),), 1)
    ]
    assert all(before >= 1 for query in examples for _, before in query.history)


def test_negatives_never_include_a_product_of_the_target_order() -> None:
    space = _space(CATALOG)
    row = space.row_of
    negatives = TaxonomyNegatives(space, same_aisle=6, sibling_aisles=3)
    order = frozenset({row["a"], row["b"], row["d"]})  # milk has only "e" left, cheese only "f"
    drawn = negatives.sample(row["a"], order, np.random.default_rng(0))
    assert drawn[:6] == [row["e"]] * 6 and drawn[6:] == [row["f"]] * 3
    full_aisle = frozenset({row["a"], row["b"], row["e"]})  # nothing left in milk: its draws go to cheese
    assert set(negatives.sample(row["a"], full_aisle, np.random.default_rng(1))) <= {row["d"], row["f"]}


def test_draws_repeat_by_seed_and_epoch_and_avoid_the_order(tmp_path: Path) -> None:
    space = _space(CATALOG)
    examples = order_queries(read_order_sequences(_write(tmp_path, LINES), CATALOG).users, space, every_order=True)
    negatives = TaxonomyNegatives(space, 4, 2)
    indices = list(range(len(examples)))
    first = draw_examples(examples, indices, negatives, seed=3, epoch=1)
    again = draw_examples(examples, indices[::-1], negatives, seed=3, epoch=1)
    assert np.array_equal(first[0], again[0][::-1]) and np.array_equal(first[1], again[1][::-1])
    epochs = [draw_examples(examples, indices, negatives, seed=3, epoch=e)[1] for e in range(2, 6)]
    assert any(not np.array_equal(first[1], other) for other in epochs)
    for positives, hard in [first, *((first[0], e) for e in epochs)]:
        for example, positive, row in zip(examples, positives, hard):
            assert positive in example.relevant and not set(row.tolist()) & example.order


def _repeat_buyers() -> str:
    """20 users, 5 orders each: every order buys the user's own milk and tea (always the same two products),
    so the history says which product of the aisle is meant."""
    lines, order_id = [], 100
    milks, teas = ["a", "b", "e"], ["c", "g"]
    for user in range(20):
        for number in range(1, 6):
            order_id += 1
            gap = "" if number == 1 else "7"
            for cart, product in enumerate((milks[user % 3], teas[user % 2], "h" if number % 2 else "d"), 1):
                lines.append(f"{order_id},{user},{number},1,9,{gap},{product},{cart},0")
    return "\n".join(lines) + "\n"


def test_a_short_training_run_lowers_the_training_loss(tmp_path: Path) -> None:
    space = _space(CATALOG)
    users = read_order_sequences(_write(tmp_path, _repeat_buyers()), CATALOG).users
    train, validation = order_queries(users, space, every_order=True), order_queries(users, space)
    config = AttentionTrainConfig(
        epochs=8,
        batch_size=16,
        learning_rate=1e-2,
        same_aisle=2,
        sibling_aisles=1,
        select_metric="ndcg@10",  # 8 products: every Recall@24 is 1
        model=UserAttentionConfig(dim=DIM, key_dim=4, max_history=10),
    )
    negatives = TaxonomyNegatives(space, 2, 1)
    trained = train_user_model(train, validation, space, config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        initial = UserAttention(config.model)
    before = run_epoch(initial, train, space, negatives, config, seed=9, epoch=0)
    after = run_epoch(trained.model, train, space, negatives, config, seed=9, epoch=0)
    assert after < before
    losses = [entry.loss for entry in trained.log[1:]]
    assert losses[-1] < losses[0]
    assert [entry.epoch for entry in trained.log] == list(range(9)) and trained.train_examples == len(train)
    assert trained.best_epoch > 0
    best = trained.log[trained.best_epoch].validation["ndcg@10"]
    assert best == max(entry.validation["ndcg@10"] for entry in trained.log)


def test_training_is_deterministic_by_seed(tmp_path: Path) -> None:
    space = _space(CATALOG)
    users = read_order_sequences(_write(tmp_path, _repeat_buyers()), CATALOG).users
    train, validation = order_queries(users, space, every_order=True), order_queries(users, space)
    config = AttentionTrainConfig(
        epochs=2,
        batch_size=16,
        same_aisle=2,
        sibling_aisles=1,
        model=UserAttentionConfig(dim=DIM, key_dim=4, max_history=10),
    )
    first, second = (train_user_model(train, validation, space, config) for _ in range(2))
    assert [e.loss for e in first.log[1:]] == [e.loss for e in second.log[1:]]


def test_the_query_time_model_keeps_the_weights_it_was_made_with() -> None:
    """A model trained further after `at_query_time` does not move the vectors of the form made before."""
    space = _space(CATALOG)
    model = _model(zero_slot=-1e4)
    query, history = _unit(np.random.default_rng(8).normal(size=DIM)), _history([1, 4], [1, 3], space.matrix)
    frozen = model.at_query_time()
    before = frozen.personalize(query, history)[0]
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
    np.testing.assert_array_equal(frozen.personalize(query, history)[0], before)
    assert not np.allclose(model.at_query_time().personalize(query, history)[0], before)


def test_counts_are_ints_but_a_recency_takes_numpy_integers_too() -> None:
    """A config's counts stay plain ints (its JSON must be written); history orders may come out of arrays."""
    with pytest.raises(PersonalizationError, match="max_history must be an integer >= 1"):
        UserAttentionConfig(max_history=np.int64(5))  # type: ignore[arg-type]
    assert recency_bucket(np.int64(3)) == recency_bucket(3) == 2
    with pytest.raises(PersonalizationError, match="orders_before must be an integer >= 1"):
        recency_bucket(np.int64(0))
