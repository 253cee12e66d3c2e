"""Pure parts of the benchmark runner."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

import pytest

from tbhns_opensearch.bench.runner import (
    BREAKDOWNS,
    BenchConfig,
    QuerySet,
    SystemSpec,
    alias_for,
    load_inputs,
    query_ids,
    top_category_groups,
)
from tbhns_opensearch.catalog import Product, read_judgments_csv
from tbhns_opensearch.errors import BenchError
from tbhns_opensearch.eval.queries import LabelledQuery, query_key, write_labelled_queries
from tbhns_opensearch.eval.splits import write_split
from tbhns_opensearch.training.config import DataConfig
from tbhns_opensearch.training.data import prepare_data
from tests.conftest import FIXTURES

BM25 = (SystemSpec("bm25", "bm25"),)


def test_query_ids_are_sorted_stable_and_whitespace_free() -> None:
    assert query_ids(["usb cable", "fan", "usb cable"]) == {"fan": "q0001", "usb cable": "q0002"}


def test_top_category_is_the_majority_of_relevant_products() -> None:
    products = [Product("a", "A", taxonomy_path=("Toys", "Cars")), Product("b", "B", taxonomy_path=("Toys",)),
                Product("c", "C", taxonomy_path=("Games",)), Product("d", "D")]  # fmt: skip
    qrels = {"q1": {"a": 2, "b": 1, "c": 3}, "q2": {"c": 0, "d": 1}, "q3": {"c": 0}}
    assert top_category_groups(qrels, products) == {"q1": "Toys", "q2": "(none)"}


def test_queries_break_down_by_shape_and_a_config_names_breakdowns(tmp_path: Path) -> None:
    queries = QuerySet({"q1": "1/2 in. copper elbow", "q2": "patio umbrella"}, {})
    assert BREAKDOWNS["query_shape"](queries, []) == {"q1": "with a number", "q2": "words only"}
    config = tmp_path / "bench.toml"
    config.write_text('title = "t"\ncatalog = "icecat"\nbreakdown = "query_shape"\n'
                      '[[systems]]\nname = "bm25"\nmode = "bm25"\n')  # fmt: skip
    assert BenchConfig.from_toml(config).breakdown == ("query_shape",)
    with pytest.raises(BenchError, match=r"unknown breakdown \['length'\]; valid breakdowns are \['query_shape', 'top_category'\]"):
        BenchConfig(title="t", systems=BM25, catalog="icecat", breakdown=("query_shape", "length"))


def test_config_rejects_unknown_split_and_missing_baseline() -> None:
    with pytest.raises(BenchError, match="split must be"):
        BenchConfig(title="t", systems=BM25, catalog="icecat", split="train")
    with pytest.raises(BenchError, match=r"baselines \['semantic-base'\] are not among"):
        BenchConfig(title="t", systems=BM25, catalog="icecat", baselines=("semantic-base",))


def test_a_system_overrides_hybrid_depth_and_bm25_weight_only_where_it_names_them() -> None:
    assert SystemSpec("h", "hybrid").hybrid() is None  # HybridConfig's defaults
    tuned = SystemSpec("h", "hybrid", hybrid_depth=24, hybrid_bm25_weight=0.6).hybrid()
    assert tuned is not None and (tuned.depth, tuned.weights) == (24, (0.6, 0.4))
    assert SystemSpec("h", "hybrid", hybrid_bm25_weight=0.0).hybrid().weights == (0.0, 1.0)  # type: ignore[union-attr]
    with pytest.raises(BenchError, match="hybrid_bm25_weight must be in"):
        SystemSpec("h", "hybrid", hybrid_bm25_weight=1.5)
    with pytest.raises(BenchError, match="hybrid_bm25_weight must be in"):
        SystemSpec("h", "hybrid", hybrid_bm25_weight=-0.5)  # no sentinel: a negative weight is an error


def test_shipped_configs_parse() -> None:
    for path in (Path(__file__).resolve().parents[2] / "benchmarks" / "configs").glob("*.toml"):
        config = BenchConfig.from_toml(path)
        assert config.systems and config.baselines[0] in {s.name for s in config.systems}


def test_alias_is_a_valid_index_name() -> None:
    alias = alias_for("../data/My Catalog.jsonl", "runs/train/Icecat_TBHNS")
    assert re.fullmatch(r"bench-my-catalog-icecat-tbhns-[0-9a-f]{8}", alias)


def test_encoders_sharing_a_folder_name_get_their_own_alias(tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "icecat-taxonomy", tmp_path / "b" / "icecat-taxonomy"
    for folder in (first, second):
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"weights")
    assert alias_for("icecat", str(first)) != alias_for("icecat", str(second))
    before = alias_for("icecat", str(first))
    os.utime(first / "model.safetensors", ns=(1, 1))  # retrained in place
    assert alias_for("icecat", str(first)) != before


def test_wands_config_reads_a_folder_in_the_published_layout() -> None:
    root = Path(__file__).resolve().parents[2]
    config = replace(BenchConfig.from_toml(root / "benchmarks" / "configs" / "wands.toml"),
                     data_dir=str(root / "tests" / "fixtures" / "wands"), split="all")  # fmt: skip
    products, query_set = load_inputs(config)
    assert products and query_set.texts
    assert {grade for grades in query_set.qrels.values() for grade in grades.values()} <= {0, 1, 2}
    assert config.threshold == 2 and config.source == "real"


def test_the_split_tbhns_train_wrote_is_the_one_the_bench_evaluates(tmp_path: Path) -> None:
    queries = tmp_path / "queries.jsonl"
    write_labelled_queries(queries, (LabelledQuery.from_judgment(j) for j in read_judgments_csv(FIXTURES / "icecat_judgments.csv")))
    catalog = str(FIXTURES / "icecat_products.jsonl")
    data = prepare_data(DataConfig(catalog=catalog, queries=str(queries), unseen_products=False, validation=0.2, test=0.2), seed=7)
    split_file = write_split(tmp_path, data.split_of)
    config = BenchConfig(title="t", systems=BM25, catalog=catalog, queries=str(queries), split_file=str(split_file))
    _, query_set = load_inputs(config)  # split_seed and fractions differ from the trainer's: the file wins
    evaluated = {query_key(text) for text in query_set.texts.values()}
    assert set(data.test.queries) <= evaluated
    assert not evaluated & (set(data.validation.queries) | {query_key(j.query) for j in data.train_judgments})
