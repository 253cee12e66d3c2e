"""Pure request builders, compared with `==`."""

import pytest

from tbhns_opensearch.errors import SearchError
from tbhns_opensearch.query.builders import (
    BM25_FIELDS,
    SOURCE_FIELDS,
    Filters,
    build_bm25,
    build_hybrid,
    build_knn,
    clip_query_text,
    parse_filters,
)

FILTERS = Filters(
    category=("Hobbies", "Slot Cars"),
    price_min=10.0,
    price_max=50.0,
    brands=("Scalextric",),
    attributes=("scale=1:32",),
)
CLAUSES = [
    {"term": {"category_path": "Hobbies>Slot Cars"}},
    {"range": {"price": {"gte": 10.0, "lte": 50.0}}},
    {"terms": {"brand.keyword": ["scalextric"]}},
    {"term": {"attribute_terms": "scale=1:32"}},
]
MATCH = {"multi_match": {"query": "slot car", "fields": list(BM25_FIELDS), "type": "best_fields", "tie_breaker": 0.3}}


def test_bm25_request() -> None:
    assert build_bm25("  slot   car ", 10, FILTERS, offset=20) == {
        "size": 10,
        "from": 20,
        "_source": False,
        "stored_fields": list(SOURCE_FIELDS),
        "query": {"bool": {"must": [MATCH], "filter": CLAUSES}},
    }


def test_knn_request_puts_filters_inside_the_clause() -> None:
    assert build_knn([0.5, 0.25], 10, FILTERS, offset=10) == {
        "size": 10,
        "from": 10,
        "_source": False,
        "stored_fields": list(SOURCE_FIELDS),
        "query": {"knn": {"embedding": {"vector": [0.5, 0.25], "k": 20, "filter": {"bool": {"filter": CLAUSES}}}}},
    }


def test_hybrid_request_has_both_clauses_with_filters_and_a_pagination_depth() -> None:
    assert build_hybrid("slot car", [0.5, 0.25], 10, depth=100, filters=FILTERS, offset=10) == {
        "size": 10,
        "from": 10,
        "_source": False,
        "stored_fields": list(SOURCE_FIELDS),
        "query": {
            "hybrid": {
                "queries": [
                    {"bool": {"must": [MATCH], "filter": CLAUSES}},
                    {"knn": {"embedding": {"vector": [0.5, 0.25], "k": 100, "filter": {"bool": {"filter": CLAUSES}}}}},
                ],
                "pagination_depth": 100,
            }
        },
    }
    with pytest.raises(SearchError, match="offset \\+ k = 110 exceeds the hybrid depth 100"):
        build_hybrid("slot car", [0.5], 10, depth=100, offset=100)


@pytest.mark.parametrize(
    "text",
    ['"unbalanced', "title:(lego OR duplo) AND NOT [1 TO 5]", "a\\b\\", "🚂🚃 train", '{"query": {"match_all": {}}}'],
)
def test_user_text_only_reaches_multi_match(text: str) -> None:
    body = build_bm25(text, 5)
    assert body["query"]["bool"]["must"] == [{"multi_match": {**MATCH["multi_match"], "query": clip_query_text(text)}}]
    assert "query_string" not in str(body) and "simple_query_string" not in str(body)


def test_long_text_is_clipped() -> None:
    clipped = clip_query_text("word " * 2000)
    assert len(clipped) <= 512 and len(clipped.split()) == 64


def test_parse_filters_every_kind() -> None:
    specs = ["category=Hobbies > Slot Cars", "price=10..50", "brand=Scalextric", "brand=Carrera", "attr=scale=1:32"]
    assert parse_filters(specs) == Filters(
        category=("Hobbies", "Slot Cars"),
        price_min=10.0,
        price_max=50.0,
        brands=("Scalextric", "Carrera"),
        attributes=("scale=1:32",),
    )
    assert parse_filters(["price=..20"]) == Filters(price_max=20.0)
    assert parse_filters(["price=5.5.."]) == Filters(price_min=5.5)
    assert parse_filters([]) is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("colour=red", r"valid names are \['category', 'price', 'brand', 'attr'\]"),
        ("brand", "not NAME=VALUE"),
        ("price=cheap", "price filter 'cheap' must be MIN..MAX"),
        ("price=..", "price filter"),
        ("price=50..10", "price range 50.0..10.0 is empty"),
        ("price=nan..", "with finite numbers"),
        ("price=..inf", "with finite numbers"),
        ("price=1e400..", "with finite numbers"),
        ("price=1e39..", r"within ±3.4e\+38"),
        ("price=..-1e39", r"within ±3.4e\+38"),
        ("attr=red", "must be attr=NAME=VALUE"),
        ("category=A>>B", "empty level"),
    ],
)
def test_parse_filters_errors_say_what_to_do(spec: str, message: str) -> None:
    with pytest.raises(SearchError, match=message):
        parse_filters([spec])


def test_only_one_category() -> None:
    with pytest.raises(SearchError, match="at most one category filter, got A and B"):
        parse_filters(["category=A", "category=B"])
