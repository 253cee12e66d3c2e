"""benchmarks/hybrid_fusion.py without a node: the offline fusion replays a hybrid page, cells parse strictly."""

from __future__ import annotations

import argparse
from types import ModuleType

import pytest

from tbhns_opensearch.query.fusion import HybridConfig, minmax_fuse
from tests.helpers import load_script


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_script("benchmarks/hybrid_fusion.py")


def test_a_cell_fuses_the_top_depth_of_each_list_and_keeps_a_page(script: ModuleType) -> None:
    bm25 = [(f"b{i}", 30.0 - i) for i in range(30)]
    knn = {
        2: [("b29", 0.9), ("k1", 0.8)],
        30: [("b29", 0.9), ("k1", 0.8)] + [(f"k{i}", 0.7 - i / 100) for i in range(2, 30)],
    }
    run = script.fused_run({"drill": (bm25, knn)}, {"drill": "q1"}, depth=2, bm25_weight=0.6)
    # depth 2: only b0, b1 of BM25 (b29 is no BM25 candidate there), b29 and k1 of knn
    assert list(run["q1"]) == [pid for pid, _ in minmax_fuse([bm25[:2], knn[2]], HybridConfig(weights=(0.6, 0.4)))]
    assert set(run["q1"]) == {"b0", "b1", "b29", "k1"}
    deep = script.fused_run({"drill": (bm25, knn)}, {"drill": "q1"}, depth=30, bm25_weight=0.6)
    assert len(deep["q1"]) == script.PAGE and deep["q1"]["b29"] > 0.4  # a candidate of both lists now


def test_grid_cells_parse_strictly(script: ModuleType) -> None:
    assert script.grid_cell("100:0.3") == (100, 0.3)
    for bad in ("100", "7:0.3", "24:0.35", "a:b"):
        with pytest.raises(argparse.ArgumentTypeError, match="not a cell of the grid"):
            script.grid_cell(bad)
