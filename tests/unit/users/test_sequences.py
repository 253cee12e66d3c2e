"""Instacart order sequences: the whole-last-order protocol on a small hand-made file in the published layout."""

from pathlib import Path

import numpy as np
import pytest

from tbhns_opensearch.catalog.product import Product
from tbhns_opensearch.errors import PersonalizationError
from tbhns_opensearch.users.profiles import PersonalizationConfig, build_user_profiles
from tbhns_opensearch.users.sequences import (
    ORDER_LINE_COLUMNS,
    PastPurchase,
    SequenceUser,
    cut_history,
    held_out_user,
    read_order_sequences,
    select_users,
    sequence_queries,
    user_split,
)

HEADER = ",".join(ORDER_LINE_COLUMNS)
# user 1: orders 1-3 (gaps 5 and 7 days), target = order 3; user 2: orders 1-2, target = order 2.
# Product "x" is not in the catalog (dropped); "n" is named but has no aisle. Lines are deliberately shuffled.
LINES = """\
13,1,3,4,9,7.0,a,2.0,1.0
11,1,1,2,8,,a,1.0,0.0
11,1,1,2,8,,x,2.0,0.0
12,1,2,3,8,5.0,b,1.0,0.0
12,1,2,3,8,5.0,a,2.0,1.0
13,1,3,4,9,7.0,c,1.0,0.0
13,1,3,4,9,7.0,x,3.0,0.0
13,1,3,4,9,7.0,n,4.0,0.0
21,2,1,0,10,,c,1.0,0.0
22,2,2,1,11,30.0,d,1.0,0.0
"""
CATALOG = [
    Product("a", "Oat Milk", taxonomy_path=("dairy eggs", "milk")),
    Product("b", "Skim Milk", taxonomy_path=("dairy eggs", "milk")),
    Product("c", "Green Tea", taxonomy_path=("beverages", "tea")),
    Product("d", "Cheddar", taxonomy_path=("dairy eggs", "cheese")),
    Product("n", "Mystery Item"),
]


def _write(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "order_lines.csv"
    path.write_text(f"{header}\n{body}")
    return path


def test_the_last_order_is_the_target_and_every_earlier_order_the_history(tmp_path: Path) -> None:
    data = read_order_sequences(_write(tmp_path, LINES), CATALOG)
    assert (data.lines_read, data.lines_dropped) == (10, 2)
    first, second = data.users
    assert first == SequenceUser(
        user_id="1",
        history=(PastPurchase("a", 2, 12.0), PastPurchase("b", 1, 7.0), PastPurchase("a", 1, 7.0)),
        target_order="13",
        targets=("c", "a", "n"),  # add-to-cart order; "x" dropped
        history_orders=2,
    )
    assert second == SequenceUser("2", (PastPurchase("c", 1, 30.0),), "22", ("d",), 1)


def test_no_line_of_the_target_order_enters_the_history(tmp_path: Path) -> None:
    for user in read_order_sequences(_write(tmp_path, LINES), CATALOG).users:
        assert all(purchase.orders_before >= 1 for purchase in user.history)


def test_an_unknown_gap_leaves_days_unknown_for_that_order_and_earlier(tmp_path: Path) -> None:
    body = "11,1,1,2,8,,a,1,0\n12,1,2,3,8,,b,1,0\n13,1,3,4,9,7,c,1,0\n"  # order 2's gap unknown
    (user,) = read_order_sequences(_write(tmp_path, body), CATALOG).users
    assert [(p.product_id, p.days_before) for p in user.history] == [("a", None), ("b", 7.0)]


def test_cut_history_keeps_the_last_orders() -> None:
    history = (PastPurchase("a", 3, 9.0), PastPurchase("b", 2, 4.0), PastPurchase("c", 1, 1.0))
    user = SequenceUser("u", history, "o", ("d",), 3)
    assert [p.product_id for p in cut_history(user, 1).history] == ["c"]
    assert cut_history(user, 4) == user
    assert (cut_history(user, 0).history, cut_history(user, 0).history_orders) == ((), 0)
    with pytest.raises(PersonalizationError, match=r"last_orders must be an integer >= 0.*-1"):
        cut_history(user, -1)


def test_queries_are_the_aisles_of_the_target_order(tmp_path: Path) -> None:
    users = read_order_sequences(_write(tmp_path, LINES), CATALOG).users
    aisle = [(q.user_id, q.text, sorted(q.targets)) for q in sequence_queries(users, CATALOG)]
    assert aisle == [("1", "milk", ["a"]), ("1", "tea", ["c"]), ("2", "cheese", ["d"])]  # "n" has no aisle
    path = [q.text for q in sequence_queries(users, CATALOG, form="path")]
    assert path == ["beverages > tea", "dairy eggs > milk", "dairy eggs > cheese"]  # sorted per user
    with pytest.raises(PersonalizationError, match=r"query form 'leaf' is unknown; use one of aisle, path"):
        sequence_queries(users, CATALOG, form="leaf")


def test_the_history_feeds_the_profile_builder_with_recency_by_order(tmp_path: Path) -> None:
    users = read_order_sequences(_write(tmp_path, LINES), CATALOG).users
    held = held_out_user(users[0])
    assert [(e.product_id, e.timestamp) for e in held.history] == [("a", -2.0), ("b", -1.0), ("a", -1.0)]
    vectors = {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 1.0])}
    config = PersonalizationConfig(event_weights={"purchase": 1.0}, half_life=1.0)
    # a: 0.5 (two orders back) + 1 (one order back); b: 1
    expected = np.array([1.5, 1.0]) / np.hypot(1.5, 1.0)
    np.testing.assert_allclose(build_user_profiles(held.history, vectors, config)["1"].vector, expected)


def test_the_user_split_is_deterministic_disjoint_and_independent_of_other_users() -> None:
    users = [SequenceUser(str(i), (), f"o{i}", ("p",), 0) for i in range(300)]
    parts = {name: {u.user_id for u in select_users(users, name, seed=3)} for name in ("train", "validation", "test")}
    assert sum(map(len, parts.values())) == 300 and set.union(*parts.values()) == {str(i) for i in range(300)}
    assert 130 < len(parts["train"]) < 230 and 30 < len(parts["validation"]) < 90 and 30 < len(parts["test"]) < 90
    assert {u.user_id for u in select_users(users[:40], "test", seed=3)} == parts["test"] & {str(i) for i in range(40)}
    assert select_users(users, "all") == users
    assert user_split("7", seed=1) == user_split("7", seed=1)
    with pytest.raises(PersonalizationError, match=r"split 'dev' is unknown; use one of train, validation, test, all"):
        select_users(users, "dev")
    with pytest.raises(PersonalizationError, match=r"validation=0.6 and test=0.5"):
        user_split("7", validation=0.6, test=0.5)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("11,1,x,2,8,,a,1,0\n", r"order_lines.csv:2: field order_number is 'x'; give a whole number >= 1"),
        ("11,1,1,2,8,,a,1,0\n12,1,2,3,8,-3,b,1,0\n", r"order_lines.csv:3: field days_since_prior_order is '-3'"),
        ("11,1,1,2,8,,,1,0\n", r"order_lines.csv:2: field product_id is empty"),
        ("11,1,1,2,8,,a,0,0\n", r"order_lines.csv:2: field add_to_cart_order is '0'"),
        (
            "11,1,1,2,8,,a,1,0\n11,1,2,2,8,,b,2,0\n",
            r"order_lines.csv:3: order '11' has user_id '1' and order_number 2, "
            r"but line 2 gives user_id '1' and order_number 1",
        ),
        ("11,1,1,2,8,,a,1,0\n11,2,1,2,8,,b,2,0\n", r"order_lines.csv:3: order '11' has user_id '2'"),
        ("11,1,1,2,8,,a,1,0\n12,1,1,2,8,,b,1,0\n", r"order_lines.csv:3: field order_number is 1 for order '12'"),
    ],
)
def test_bad_lines_name_the_file_line_field_and_fix(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(PersonalizationError, match=message):
        read_order_sequences(_write(tmp_path, body), CATALOG)


def test_a_missing_file_or_column_says_what_to_give(tmp_path: Path) -> None:
    with pytest.raises(PersonalizationError, match=r"does not exist; pass a CSV with the columns order_id"):
        read_order_sequences(tmp_path / "nope.csv", CATALOG)
    header = HEADER.replace(",reordered", "").replace("product_id,", "")  # reordered is not needed
    with pytest.raises(PersonalizationError, match=r"order_lines.csv:1: the header lacks columns \['product_id'\]"):
        read_order_sequences(_write(tmp_path, "", header=header), CATALOG)
