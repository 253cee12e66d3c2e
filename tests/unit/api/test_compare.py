"""The comparison page's backend without a cluster: column and system specs, grades, NDCG@10, rank moves."""

from __future__ import annotations

import math

import pytest

from tbhns_opensearch.api.compare import ComparedSystem, compare, parse_column
from tbhns_opensearch.errors import SearchError
from tbhns_opensearch.query import SearchHit, SearchResponse


class FakeClient:
    """Answers every search with a fixed ranking (the page logic is what is tested here, not the search)."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self.query_encoder = type("QE", (), {"name": "enc"})()

    def search(self, query: str, **_: object) -> SearchResponse:
        hits = [SearchHit(pid, 1.0 / (i + 1), f"title {pid}", ("A", "B")) for i, pid in enumerate(self.ids)]
        return SearchResponse(hits, "bm25", "bm25", 1.0)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fuzzy:base", "mode 'fuzzy' is unknown"),
        ("", "mode '' is unknown"),
    ],
)
def test_bad_columns_are_named(spec: str, message: str) -> None:
    with pytest.raises(SearchError, match=message):
        parse_column(spec)


@pytest.mark.parametrize("spec", ["trained", "=a,b", "trained=onlyalias", "trained=a,b,c,d", "bad name=a,b"])
def test_bad_system_specs_say_the_form(spec: str) -> None:
    with pytest.raises(SearchError, match="NAME=ALIAS,ENCODER|must be letters"):
        ComparedSystem.parse(spec)


def test_system_spec_with_users_index() -> None:
    assert ComparedSystem.parse("base=products-base, all-MiniLM-L6-v2 ,users-base") == ComparedSystem(
        "base", "products-base", "all-MiniLM-L6-v2", "users-base"
    )


def test_grades_ndcg_and_moves_against_the_first_column() -> None:
    clients = {"a": FakeClient(["p1", "p2", "p3"]), "b": FakeClient(["p3", "p1", "p9"])}
    grades = {"kite": {"p1": 2, "p3": 1, "p2": 0}}
    result = compare("Kite ", [parse_column("bm25:a"), parse_column("bm25:b")], clients, k=3, judgments=grades)  # type: ignore[arg-type]
    first, second = result.columns
    assert result.judged
    assert [h.grade for h in first.hits] == [2, 0, 1] and [h.grade for h in second.hits] == [1, 2, None]
    assert [h.moved_by for h in first.hits] == [None, None, None]
    assert [h.moved_by for h in second.hits] == [2, -1, None]  # p3 rose from 3rd to 1st, p1 fell 1st -> 2nd, p9 new
    ideal = 2 + 1 / math.log2(3)
    assert first.ndcg_at_10 == pytest.approx((2 + 0 + 1 / 2) / ideal, abs=1e-4)
    assert second.ndcg_at_10 == pytest.approx((1 + 2 / math.log2(3)) / ideal, abs=1e-4)


def test_unjudged_queries_have_no_grades_and_no_ndcg() -> None:
    result = compare("boat", [parse_column("bm25")], {"a": FakeClient(["p1"])}, judgments={"kite": {"p1": 2}})  # type: ignore[dict-item]
    assert not result.judged
    assert result.columns[0].hits[0].grade is None and result.columns[0].ndcg_at_10 is None
    assert result.columns[0].system == "a"  # no system named: the server's first


def test_column_count_and_unknown_systems_are_errors() -> None:
    clients = {"a": FakeClient(["p1"])}
    with pytest.raises(SearchError, match="1 to 4 columns"):
        compare("kite", [parse_column("bm25")] * 5, clients)  # type: ignore[arg-type]
    with pytest.raises(SearchError, match="no system 'zz'"):
        compare("kite", [parse_column("bm25:zz")], clients)  # type: ignore[arg-type]
