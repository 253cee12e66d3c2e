"""benchmarks/personalization_joint.py's pure helpers, on hand-made data: epoch chunks, the in-order mask, tests."""

from __future__ import annotations

from types import ModuleType

import pytest

from tests.helpers import load_script


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_script("benchmarks/personalization_joint.py")


def test_epoch_chunks_are_disjoint_until_the_examples_run_out_and_repeat_for_a_seed(script: ModuleType) -> None:
    chunks = script.epoch_chunks(10, 3, 3, seed=7)
    flat = [i for chunk in chunks for i in chunk]
    assert [len(c) for c in chunks] == [3, 3, 3] and len(set(flat)) == 9  # 9 of 10 examples, none twice
    assert chunks == script.epoch_chunks(10, 3, 3, seed=7)
    assert script.epoch_chunks(10, 3, 3, seed=8) != chunks
    wrapped = script.epoch_chunks(4, 3, 2, seed=0)  # 6 draws of 4 examples: all 4, then 2 again
    assert sorted(set(wrapped[0] + wrapped[1])) == [0, 1, 2, 3]


def test_epoch_chunks_refuse_an_empty_request(script: ModuleType) -> None:
    with pytest.raises(SystemExit, match="--examples"):
        script.epoch_chunks(10, 0, 1, seed=0)


def test_in_order_mask_hides_positives_bought_in_the_examples_own_order_but_never_its_own(script: ModuleType) -> None:
    orders = [frozenset({1, 2, 5}), frozenset({2}), frozenset({9})]
    positives = [1, 2, 2]  # example 2's positive is 2 too, but 2 is not in its order {9}
    assert script.in_order_mask(orders, positives).tolist() == [
        [False, True, True],  # 2 is in order 0: both other examples' positives are masked for example 0
        [False, False, True],  # example 2's positive (2) is in order 1; its own diagonal stays
        [False, False, False],
    ]


def test_paired_tests_pair_by_user_then_by_query_and_holm_correct_each_family(script: ModuleType) -> None:
    base = {"u1/0/milk": 0.0, "u1/0/tea": 0.0, "u2/0/milk": 0.5, "u3/0/tea": 1.0}
    better = {"u1/0/milk": 1.0, "u1/0/tea": 1.0, "u2/0/milk": 0.5, "u3/0/tea": 1.0}
    per_query = {"a": {"m": base, "n": base}, "b": {"m": better, "n": base}}
    tests = script.paired_tests(per_query, [("b", "a")], ["m", "n"], seed=0)
    by_user, by_query = tests["per user"], tests["per query"]
    assert [t.n for t in by_user] == [3, 3] and [t.n for t in by_query] == [4, 4]
    assert by_user[0].mean_diff == pytest.approx(1 / 3)  # u1 +1, u2 0, u3 0
    assert by_query[0].mean_diff == pytest.approx(0.5)  # two of four queries +1
    assert by_user[1].mean_diff == 0.0 and by_user[1].p_rand == 1.0
    assert all(t.correction == "holm" for t in by_user + by_query)
    assert by_user[0].p_adjusted == pytest.approx(min(1.0, 2 * by_user[0].p_rand))  # the smaller p of two, x2
