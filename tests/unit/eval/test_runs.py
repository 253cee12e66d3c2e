"""TREC run and qrels files round-trip; bad lines fail with the line number."""

from __future__ import annotations

import pytest

from tbhns_opensearch.errors import EvaluationError
from tbhns_opensearch.eval.runs import (
    DataSource,
    RankedRun,
    ranking,
    read_qrels,
    read_ranked_run,
    read_run,
    write_qrels,
    write_ranked_run,
    write_run,
)


def test_ranking_breaks_ties_by_docid():
    assert ranking({"b": 1.0, "a": 1.0, "c": 2.0}) == [("c", 2.0), ("a", 1.0), ("b", 1.0)]


def test_write_run_layout_and_round_trip(tmp_path):
    run = {"q2": {"d1": 0.5}, "q1": {"d2": 1.0, "d1": 3.25, "d3": 1.0}}
    path = tmp_path / "bm25.trec"
    write_run(path, run, "bm25")
    assert path.read_text().splitlines() == [
        "q1 Q0 d1 1 3.25 bm25",
        "q1 Q0 d2 2 1.0 bm25",
        "q1 Q0 d3 3 1.0 bm25",
        "q2 Q0 d1 1 0.5 bm25",
    ]
    assert read_run(path) == run


def test_write_run_depth(tmp_path):
    path = tmp_path / "r.trec"
    write_run(path, {"q1": {"a": 3.0, "b": 2.0, "c": 1.0}}, "r", depth=2)
    assert read_run(path) == {"q1": {"a": 3.0, "b": 2.0}}


def test_qrels_round_trip(tmp_path):
    qrels = {"q1": {"d2": 0, "d1": 2}, "q2": {"d9": 3}}
    path = tmp_path / "x.qrels"
    write_qrels(path, qrels)
    assert path.read_text().splitlines() == ["q1 0 d1 2", "q1 0 d2 0", "q2 0 d9 3"]
    assert read_qrels(path) == qrels


def test_ranked_run_round_trip_keeps_labels(tmp_path):
    ranked = RankedRun(
        "knn-tbhns", {"q1": {"d1": 0.9}}, mode="knn", source="generated", encoder="minilm-tbhns", metadata={"k": "100"}
    )
    meta = write_ranked_run(tmp_path / "knn.trec", ranked)
    assert meta.name == "knn.trec.meta.json"
    assert read_ranked_run(tmp_path / "knn.trec") == ranked
    assert ranked.source is DataSource.GENERATED


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("q1 Q0 d1 1 2.0\n", "expected 6 fields"),
        ("q1 Q0 d1 1 high bm25\n", "score must be float"),
        ("q1 Q0 d1 1 2.0 bm25\nq1 Q0 d1 2 1.0 bm25\n", "appears twice"),
    ],
)
def test_read_run_rejects_bad_lines(tmp_path, text, message):
    path = tmp_path / "bad.trec"
    path.write_text(text)
    with pytest.raises(EvaluationError, match=message):
        read_run(path)


def test_read_qrels_rejects_non_integer_grade(tmp_path):
    path = tmp_path / "bad.qrels"
    path.write_text("q1 0 d1 Exact\n")
    with pytest.raises(EvaluationError, match=r"bad.qrels:1: grade must be int"):
        read_qrels(path)


def test_unknown_source_lists_valid_ones():
    with pytest.raises(EvaluationError, match="real, generated, simulated"):
        RankedRun("x", {}, mode="bm25", source="synthetic")


def test_ids_with_whitespace_are_rejected(tmp_path):
    with pytest.raises(EvaluationError, match="'usb cable'"):
        write_qrels(tmp_path / "x.qrels", {"usb cable": {"d1": 1}})
    with pytest.raises(EvaluationError, match="without whitespace"):
        write_run(tmp_path / "x.trec", {"q1": {"d 1": 1.0}}, "bm25")


def test_read_ranked_run_without_metadata_says_what_to_do(tmp_path):
    write_run(tmp_path / "r.trec", {"q1": {"d1": 1.0}}, "r")
    with pytest.raises(EvaluationError, match="write_ranked_run"):
        read_ranked_run(tmp_path / "r.trec")
