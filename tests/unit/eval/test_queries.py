import pytest

from tbhns_opensearch.catalog.judgments import Judgment
from tbhns_opensearch.errors import EvaluationError, TrainingError
from tbhns_opensearch.eval.queries import LabelledQuery, query_key, read_labelled_queries, write_labelled_queries
from tbhns_opensearch.eval.splits import split_by_query
from tbhns_opensearch.training.examples import make_pairs


def test_pairs_keep_grades_at_or_above_threshold_and_carry_all_relevant_ids() -> None:
    judgments = [
        LabelledQuery("Lego Duplo", "p1", 2),
        LabelledQuery("lego  duplo", "p2", 1),
        LabelledQuery("lego duplo", "p3", 0),
        LabelledQuery("kite", "k1", 2, source="generated"),
    ]
    pairs = make_pairs(judgments, min_grade=2)
    assert [(p.query, p.positive_id, p.source) for p in pairs] == [
        ("kite", "k1", "generated"),
        ("Lego Duplo", "p1", "real"),
    ]
    assert pairs[1].relevant_ids == {"p1", "p2"}
    assert [p.positive_id for p in make_pairs(judgments, min_grade=1)] == ["k1", "p1", "p2"]


def test_duplicate_judgments_keep_the_highest_grade_and_prefer_real() -> None:
    labels = [("kite", "k1", 1), ("kite", "k1", 2, "generated"), ("kite", "k1", 2)]
    judgments = [LabelledQuery(*label) for label in labels]
    (pair,) = make_pairs(judgments)
    assert pair.source == "real"


def test_invalid_inputs_are_rejected() -> None:
    with pytest.raises(TrainingError, match="min_grade=0"):
        make_pairs([], min_grade=0)
    with pytest.raises(EvaluationError, match="source 'fake'"):
        LabelledQuery("q", "p", 1, source="fake")
    with pytest.raises(EvaluationError, match="grade -1"):
        LabelledQuery("q", "p", -1)
    with pytest.raises(EvaluationError, match="empty query"):
        LabelledQuery("  ", "p", 1)


def _judgments(n_queries: int) -> list[LabelledQuery]:
    return [LabelledQuery(f"query {i}", f"p{i}-{j}", j % 3) for i in range(n_queries) for j in range(3)]


def test_split_has_no_query_in_two_splits_and_keeps_every_judgment() -> None:
    judgments = _judgments(50)
    splits = split_by_query(judgments, seed=7, validation=0.1, test=0.2)
    keys = [{query_key(j.query) for j in part} for part in (splits.train, splits.validation, splits.test)]
    assert [len(k) for k in keys] == [35, 5, 10]
    assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
    assert sorted(splits.train + splits.validation + splits.test, key=repr) == sorted(judgments, key=repr)


def test_split_is_deterministic_and_independent_of_input_order() -> None:
    judgments = _judgments(30)
    first = split_by_query(judgments, seed=1)
    assert split_by_query(judgments, seed=1) == first
    assert {j.query for j in split_by_query(judgments[::-1], seed=1).test} == {j.query for j in first.test}
    assert {j.query for j in split_by_query(judgments, seed=2).test} != {j.query for j in first.test}


def test_split_groups_query_variants() -> None:
    judgments = [LabelledQuery("Kite", "a", 2), LabelledQuery("kite ", "b", 2)] + _judgments(10)
    splits = split_by_query(judgments, seed=0)
    assert sum(any(j.product_id in "ab" for j in part) for part in splits.__dict__.values()) == 1


def test_split_needs_enough_queries() -> None:
    with pytest.raises(EvaluationError, match="2 distinct queries"):
        split_by_query(_judgments(2), seed=0)


def test_labelled_queries_round_trip_through_jsonl(tmp_path) -> None:
    judgments = [LabelledQuery("kite", "k1", 2), LabelledQuery("red kite", "k2", 1, "generated")]
    write_labelled_queries(tmp_path / "j.jsonl", judgments)
    assert read_labelled_queries(tmp_path / "j.jsonl") == judgments
    (tmp_path / "bad.jsonl").write_text('{"query": "q"}\n')
    with pytest.raises(EvaluationError, match="bad.jsonl:1 is not a labelled query"):
        read_labelled_queries(tmp_path / "bad.jsonl")


def test_labelled_query_is_a_catalog_judgment() -> None:
    labelled = LabelledQuery.from_judgment(Judgment("kite", "k1", 2), source="generated")
    assert isinstance(labelled, Judgment)
    assert labelled == LabelledQuery("kite", "k1", 2, "generated")
