"""Client-side fusion checked against hand-computed min-max and RRF scores (OpenSearch 2.19 formulas)."""

import pytest

from tbhns_opensearch.errors import SearchError
from tbhns_opensearch.query.fusion import FUSIONS, HybridConfig, fuse, minmax_pipeline, rrf_pipeline, search_pipeline

BM25 = [("a", 10.0), ("b", 6.0), ("c", 2.0)]
VECTOR = [("c", 0.9), ("a", 0.8), ("d", 0.7)]


def _scores(fused: list[tuple[str, float]]) -> dict[str, float]:
    return dict(fused)


def test_minmax_by_hand() -> None:
    # bm25: a 1, b 0.5, c 0 -> 0.001; vector: c 1, a 0.5, d 0 -> 0.001; absent = 0; weights 0.3 / 0.7
    fused = fuse([BM25, VECTOR], HybridConfig(fusion="minmax", weights=(0.3, 0.7)))
    assert [product_id for product_id, _ in fused] == ["c", "a", "b", "d"]
    expected = {"c": 0.3 * 0.001 + 0.7, "a": 0.3 + 0.7 * 0.5, "b": 0.3 * 0.5, "d": 0.7 * 0.001}
    assert _scores(fused) == pytest.approx(expected, rel=1e-6)


def test_minmax_single_result_scores_one_and_an_empty_list_adds_nothing() -> None:
    fused = fuse([[("a", 3.0)], []], HybridConfig(weights=(0.5, 0.5)))
    assert fused == [("a", 0.5)]


def test_rrf_by_hand() -> None:
    fused = fuse([BM25, VECTOR], HybridConfig(fusion="rrf", rank_constant=60))
    expected = {"a": 1 / 61 + 1 / 62, "c": 1 / 63 + 1 / 61, "b": 1 / 62, "d": 1 / 63}
    assert [product_id for product_id, _ in fused] == ["a", "c", "b", "d"]
    assert _scores(fused) == pytest.approx(expected, rel=1e-6)


def test_rrf_ignores_weights_like_opensearch_2_19() -> None:
    assert fuse([BM25, VECTOR], HybridConfig(fusion="rrf", weights=(0.9, 0.1))) == fuse(
        [BM25, VECTOR], HybridConfig(fusion="rrf", weights=(0.1, 0.9))
    )


def test_ties_keep_first_appearance() -> None:
    assert [i for i, _ in fuse([[("x", 1.0)], [("y", 1.0)]], HybridConfig(fusion="rrf"))] == ["x", "y"]


def test_pipeline_bodies() -> None:
    assert minmax_pipeline(HybridConfig(weights=(0.4, 0.6))) == {
        "description": "tbhns hybrid: min-max normalized BM25 and vector scores, weighted arithmetic mean",
        "phase_results_processors": [
            {
                "normalization-processor": {
                    "normalization": {"technique": "min_max"},
                    "combination": {"technique": "arithmetic_mean", "parameters": {"weights": [0.4, 0.6]}},
                }
            }
        ],
    }
    assert rrf_pipeline(HybridConfig(fusion="rrf", rank_constant=10)) == {
        "description": "tbhns hybrid: reciprocal rank fusion of BM25 and vector ranks",
        "phase_results_processors": [
            {"score-ranker-processor": {"combination": {"technique": "rrf", "rank_constant": 10}}}
        ],
    }


def test_pipeline_names_follow_the_settings() -> None:
    name, body = search_pipeline(HybridConfig(weights=(0.5, 0.5)))
    assert name == search_pipeline(HybridConfig(weights=(0.5, 0.5)))[0]
    assert name != search_pipeline(HybridConfig(weights=(0.3, 0.7)))[0]
    assert name.startswith("tbhns-hybrid-minmax-") and body == minmax_pipeline(HybridConfig(weights=(0.5, 0.5)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fusion": "borda"}, r"unknown fusion 'borda'; valid fusions are \['minmax', 'rrf'\]"),
        ({"path": "edge"}, r"valid paths are \['auto', 'server', 'client'\]"),
        ({"weights": (0.5, 0.6)}, "summing to 1"),
        ({"weights": (1.0,)}, "two numbers"),
        ({"depth": 0}, "depth in"),
    ],
)
def test_hybrid_config_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(SearchError, match=message):
        HybridConfig(**kwargs)


def test_registry_names() -> None:
    assert sorted(FUSIONS) == ["minmax", "rrf"]
