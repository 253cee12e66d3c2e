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
    BenchSystem,
    QuerySet,
    alias_for,
    load_inputs,
    missing_encoder,
    query_ids,
    top_category_groups,
)
from tbhns_opensearch.catalog import Product, read_judgments_csv
from tbhns_opensearch.errors import BenchError, PersonalizationError
from tbhns_opensearch.eval.queries import LabelledQuery, query_key, write_labelled_queries
from tbhns_opensearch.eval.splits import write_split
from tbhns_opensearch.training.config import DataConfig
from tbhns_opensearch.training.data import TrainingData, prepare_data
from tbhns_opensearch.users.sequences import user_split
from tests.helpers import FIXTURES, ROOT

BM25 = (BenchSystem("bm25", "bm25"),)


def test_query_ids_are_sorted_stable_and_whitespace_free() -> None:
    assert query_ids(["usb cable", "fan", "usb cable"]) == {"fan": "q0001", "usb cable": "q0002"}


def test_top_category_is_the_majority_of_relevant_products() -> None:
    products = [
        Product("a", "A", taxonomy_path=("Toys", "Cars")),
        Product("b", "B", taxonomy_path=("Toys",)),
        Product("c", "C", taxonomy_path=("Games",)),
        Product("d", "D"),
    ]
    qrels = {"q1": {"a": 2, "b": 1, "c": 3}, "q2": {"c": 0, "d": 1}, "q3": {"c": 0}}
    assert top_category_groups(qrels, products) == {"q1": "Toys", "q2": "(none)"}


def test_queries_break_down_by_shape_and_a_config_names_breakdowns(tmp_path: Path) -> None:
    queries = QuerySet({"q1": "1/2 in. copper elbow", "q2": "patio umbrella"}, {})
    assert BREAKDOWNS["query_shape"](queries, []) == {"q1": "with a number", "q2": "words only"}
    config = tmp_path / "bench.toml"
    config.write_text(
        'title = "t"\ncatalog = "icecat"\nbreakdown = "query_shape"\n[[systems]]\nname = "bm25"\nmode = "bm25"\n'
    )
    assert BenchConfig.from_toml(config).breakdown == ("query_shape",)
    with pytest.raises(
        BenchError, match=r"unknown breakdown \['length'\]; valid breakdowns are \['query_shape', 'top_category'\]"
    ):
        BenchConfig(title="t", systems=BM25, catalog="icecat", breakdown=("query_shape", "length"))


def test_config_rejects_unknown_split_and_missing_baseline() -> None:
    with pytest.raises(BenchError, match="split must be"):
        BenchConfig(title="t", systems=BM25, catalog="icecat", split="train")
    with pytest.raises(BenchError, match=r"baselines \['semantic-base'\] are not among"):
        BenchConfig(title="t", systems=BM25, catalog="icecat", baselines=("semantic-base",))


def test_a_system_overrides_hybrid_depth_and_bm25_weight_only_where_it_names_them() -> None:
    assert BenchSystem("h", "hybrid").hybrid() is None  # HybridConfig's defaults
    tuned = BenchSystem("h", "hybrid", hybrid_depth=24, hybrid_bm25_weight=0.6).hybrid()
    assert tuned is not None and (tuned.depth, tuned.weights) == (24, (0.6, 0.4))
    assert BenchSystem("h", "hybrid", hybrid_bm25_weight=0.0).hybrid().weights == (0.0, 1.0)  # type: ignore[union-attr]
    with pytest.raises(BenchError, match="hybrid_bm25_weight must be in"):
        BenchSystem("h", "hybrid", hybrid_bm25_weight=1.5)
    with pytest.raises(BenchError, match="hybrid_bm25_weight must be in"):
        BenchSystem("h", "hybrid", hybrid_bm25_weight=-0.5)  # no sentinel: a negative weight is an error


def test_a_system_reads_profiles_on_every_query_unless_it_sets_a_ttl() -> None:
    assert BenchSystem("p", "personalized").user_ttl_s == 0.0
    assert BenchSystem("p", "personalized", user_ttl_s=60).user_ttl_s == 60
    for wrong in (-1.0, float("inf"), float("nan")):
        with pytest.raises(BenchError, match="user_ttl_s must be a finite number of seconds >= 0"):
            BenchSystem("p", "personalized", user_ttl_s=wrong)


def test_shipped_configs_parse() -> None:
    for path in (ROOT / "benchmarks" / "configs").glob("*.toml"):
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
    root = ROOT
    config = replace(
        BenchConfig.from_toml(root / "benchmarks" / "configs" / "wands.toml"),
        data_dir=str(root / "tests" / "fixtures" / "wands"),
        split="all",
    )
    products, query_set = load_inputs(config)
    assert products and query_set.texts
    assert {grade for grades in query_set.qrels.values() for grade in grades.values()} <= {0, 1, 2}
    assert config.threshold == 2 and config.source == "real"


def test_the_split_tbhns_train_wrote_is_the_one_the_bench_evaluates(tmp_path: Path) -> None:
    queries = tmp_path / "queries.jsonl"
    write_labelled_queries(
        queries, (LabelledQuery.from_judgment(j) for j in read_judgments_csv(FIXTURES / "icecat_judgments.csv"))
    )
    catalog = str(FIXTURES / "icecat_products.jsonl")
    data = prepare_data(
        DataConfig(catalog=catalog, queries=str(queries), unseen_products=False, validation=0.2, test=0.2), seed=7
    )
    split_file = write_split(tmp_path, data.split_of)
    config = BenchConfig(title="t", systems=BM25, catalog=catalog, queries=str(queries), split_file=str(split_file))
    _, query_set = load_inputs(config)  # split_seed and fractions differ from the trainer's: the file wins
    evaluated = {query_key(text) for text in query_set.texts.values()}
    assert set(data.test.queries) <= evaluated
    assert not evaluated & (set(data.validation.queries) | {query_key(j.query) for j in data.train_judgments})


SEQUENCES = FIXTURES / "instacart_sequences"


def sequences_config(tmp_path: Path, users: str, split: str = "all") -> BenchConfig:
    config = tmp_path / "bench.toml"
    config.write_text(
        f'title = "t"\ndata_dir = "{SEQUENCES}"\nsplit = "{split}"\nbaselines = ["bm25"]\n'
        f'[users]\n{users}\n[[systems]]\nname = "bm25"\nmode = "bm25"\n'
    )
    return BenchConfig.from_toml(config)


def test_order_lines_config_evaluates_every_user_on_their_whole_last_order(tmp_path: Path) -> None:
    config = sequences_config(tmp_path, f'order_lines = "{SEQUENCES / "order_lines.csv"}"')
    assert config.users is not None and config.users.history_buckets == (5, 20)  # orders, not purchases
    assert config.catalog_name() == "instacart_sequences-order_lines"
    products, query_set = load_inputs(config)
    assert sorted(p.id for p in products) == ["101", "102", "103", "202", "203", "301", "302", "303", "401"]
    assert query_set.texts == {
        "u7-cookies-cakes": "cookies cakes",
        "u7-tea": "tea",
        "u8-cookies-cakes": "cookies cakes",
        "u8-milk": "milk",
        "u9-chocolate-candy": "chocolate candy",
    }
    assert query_set.qrels["u7-tea"] == {"203": 1} and query_set.user_of["u8-milk"] == "8"
    assert query_set.groups["user history (orders)"] == {
        "u7-cookies-cakes": "5-19",
        "u7-tea": "5-19",
        "u8-cookies-cakes": "20+",
        "u8-milk": "20+",
        "u9-chocolate-candy": "0-4",
    }
    assert query_set.groups["target items"]["u7-tea"].startswith("repurchase")
    assert query_set.groups["target items"]["u8-cookies-cakes"].startswith("cold")
    history_7 = [(e.product_id, e.timestamp) for e in query_set.events if e.user_id == "7"]
    assert history_7 == [
        ("203", -5.0),
        ("102", -5.0),
        ("203", -4.0),
        ("102", -3.0),
        ("203", -2.0),
        ("102", -2.0),
        ("203", -1.0),
    ]  # timed by order: never a line of the last order
    assert "DERIVED" in query_set.label and "REAL users" in query_set.label
    assert "1 of 39 order lines dropped for want of a product name" in query_set.label


def test_order_lines_users_split_by_the_sequences_hash(tmp_path: Path) -> None:
    lines = f'order_lines = "{SEQUENCES / "order_lines.csv"}"\nvalidation = 0.3\ntest = 0.3\nseed = 3'
    evaluated = {
        split: set(load_inputs(sequences_config(tmp_path, lines, split))[1].user_of.values())
        for split in ("validation", "test")
    }
    assert [user_split(user, seed=3, validation=0.3, test=0.3) for user in "789"] == ["train", "validation", "test"]
    assert evaluated == {"validation": {"8"}, "test": {"9"}}


@pytest.mark.parametrize(
    ("users", "message"),
    [
        (
            'order_lines = "x.csv"\nholdout = 0.3',
            r"\[users\] holdout applies only without order_lines .*; drop holdout",
        ),
        ("test = 0.3", r"\[users\] test applies only with order_lines \(order_lines = ''\); drop test"),
        ('order_lines = "x.csv"\nvalidation = 0.5\ntest = 0.5', "must be shares >= 0 that leave training users"),
        ('order_lines = "x.csv"\nhistory_buckets = [20, 5]', r"increasing whole numbers >= 1 .* got \[20, 5\]"),
    ],
)
def test_users_table_errors_name_the_key_and_the_fix(tmp_path: Path, users: str, message: str) -> None:
    with pytest.raises(BenchError, match=message):
        sequences_config(tmp_path, users)


def test_a_missing_order_lines_file_is_named_at_load(tmp_path: Path) -> None:
    config = sequences_config(tmp_path, f'order_lines = "{tmp_path / "nowhere.csv"}"')
    with pytest.raises(PersonalizationError, match="order-lines file .*nowhere.csv' does not exist"):
        load_inputs(config)


def test_a_missing_model_directory_names_the_system_and_the_command_that_trains_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "training").mkdir()
    (tmp_path / "training" / "seq-combined.toml").write_text("")
    assert missing_encoder(BenchSystem("combined", "personalized", encoder="runs/train/seq-combined")) == (
        "system 'combined': encoder directory runs/train/seq-combined does not exist; train it first: "
        "tbhns train training/seq-combined.toml"
    )
    assert "output_dir is runs/train/other" in missing_encoder(BenchSystem("x", "semantic", encoder="runs/train/other"))
    (tmp_path / "runs" / "train" / "seq-combined").mkdir(parents=True)
    assert missing_encoder(BenchSystem("combined", "personalized", encoder="runs/train/seq-combined")) is None
    assert missing_encoder(BenchSystem("plain", "semantic", encoder="sentence-transformers/all-MiniLM-L6-v2")) is None


def test_bench_run_names_a_missing_model_before_any_node_starts(tmp_path: Path, monkeypatch) -> None:
    from click.testing import CliRunner

    from tbhns_opensearch.cli import bench, cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bench, "cluster_for", lambda port: pytest.fail("a node was started"))
    Path("bench.toml").write_text(
        'title = "t"\ncatalog = "icecat"\nbaselines = ["learned"]\n'
        '[[systems]]\nname = "learned"\nmode = "semantic"\nencoder = "runs/train/seq"\n'
    )
    result = CliRunner().invoke(cli, ["bench", "run", "bench.toml"])
    assert isinstance(result.exception, BenchError)
    assert "system 'learned': encoder directory runs/train/seq does not exist" in str(result.exception)


def trained_split(tmp_path: Path, seed: int = 7) -> tuple[str, str, TrainingData]:
    """A catalog, its labelled queries and the data a `tbhns train` run with `seed` and 0.2 / 0.2 splits makes."""
    queries = tmp_path / "queries.jsonl"
    write_labelled_queries(
        queries, (LabelledQuery.from_judgment(j) for j in read_judgments_csv(FIXTURES / "icecat_judgments.csv"))
    )
    catalog = str(FIXTURES / "icecat_products.jsonl")
    data = prepare_data(
        DataConfig(catalog=catalog, queries=str(queries), unseen_products=False, validation=0.2, test=0.2), seed=seed
    )
    return catalog, str(queries), data


def evaluated_keys(config: BenchConfig) -> set[str]:
    return {query_key(text) for text in load_inputs(config)[1].texts.values()}


def assert_held_out(evaluated: set[str], data: TrainingData, split: str) -> None:
    other = "validation" if split == "test" else "test"
    assert set(getattr(data, split).queries) <= evaluated
    assert not evaluated & (set(getattr(data, other).queries) | {query_key(j.query) for j in data.train_judgments})


def test_a_trained_systems_split_json_is_the_split_evaluated(tmp_path: Path) -> None:
    catalog, queries, data = trained_split(tmp_path)
    model = tmp_path / "runs" / "trained"
    model.mkdir(parents=True)
    write_split(model, data.split_of)
    systems = (*BM25, BenchSystem("trained", "semantic", encoder=str(model)))
    for split in ("test", "validation"):  # the model's seed and fractions, not fractions of the bench's own
        config = BenchConfig(title="t", systems=systems, catalog=catalog, queries=queries, split=split)
        assert_held_out(evaluated_keys(config), data, split)


def test_split_config_splits_the_queries_as_its_training_run_does(tmp_path: Path) -> None:
    catalog, queries, data = trained_split(tmp_path)
    train = tmp_path / "train.toml"
    train.write_text(f'seed = 7\n[data]\ncatalog = "{catalog}"\nqueries = "{queries}"\nvalidation = 0.2\ntest = 0.2\n')
    config = BenchConfig(title="t", systems=BM25, catalog=catalog, queries=queries, split_config=str(train))
    assert_held_out(evaluated_keys(config), data, "test")
    other = tmp_path / "other.toml"
    other.write_text(train.read_text().replace(str(Path(queries).name), "other.jsonl"))
    with pytest.raises(
        BenchError, match=r"split_config .*other.toml splits other queries .*; name the training config"
    ):
        load_inputs(replace(config, split_config=str(other)))


def test_a_model_trained_on_another_split_than_the_evaluated_one_is_refused(tmp_path: Path) -> None:
    catalog, queries, data = trained_split(tmp_path)
    model = tmp_path / "runs" / "trained"
    model.mkdir(parents=True)
    (tmp_path / "seed-8").mkdir()
    write_split(model, trained_split(tmp_path / "seed-8", seed=8)[2].split_of)  # another seed: another split
    split_file = write_split(tmp_path, data.split_of)
    systems = (*BM25, BenchSystem("trained", "semantic", encoder=str(model)))
    config = BenchConfig(title="t", systems=systems, catalog=catalog, queries=queries, split_file=str(split_file))
    with pytest.raises(BenchError, match=r"system 'trained' \(.*split.json\) puts \d+ of the test queries .* in"):
        load_inputs(config)


def test_a_split_without_a_trained_model_or_training_config_is_refused_with_the_fix(tmp_path: Path) -> None:
    catalog, queries, _ = trained_split(tmp_path)
    config = BenchConfig(title="t", systems=BM25, catalog=catalog, queries=queries, split="validation")
    fix = r"split = 'validation' needs the split training held out.* split_config = .* or split = \"all\"$"
    with pytest.raises(BenchError, match=fix):
        load_inputs(config)
    assert evaluated_keys(replace(config, split="all"))  # every query: no split needed


def test_a_config_with_fractions_of_its_own_is_told_where_the_split_comes_from(tmp_path: Path) -> None:
    config = tmp_path / "bench.toml"
    config.write_text(
        'title = "t"\ncatalog = "icecat"\nsplit_seed = 13\ntest_fraction = 0.3\n'
        '[[systems]]\nname = "bm25"\nmode = "bm25"\n'
    )
    with pytest.raises(BenchError, match=r"split_seed, test_fraction: .*split.json or split_config = .*; drop them"):
        BenchConfig.from_toml(config)


def test_bench_run_refuses_a_split_without_its_source_before_any_node_starts(tmp_path: Path, monkeypatch) -> None:
    from click.testing import CliRunner

    from tbhns_opensearch.cli import bench, cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bench, "cluster_for", lambda port: pytest.fail("a node was started"))
    Path("bench.toml").write_text('title = "t"\ncatalog = "icecat"\n[[systems]]\nname = "bm25"\nmode = "bm25"\n')
    result = CliRunner().invoke(cli, ["bench", "run", "bench.toml"])
    assert isinstance(result.exception, BenchError) and "split = 'test' needs" in str(result.exception)


def test_every_shipped_config_that_evaluates_a_split_names_where_it_comes_from() -> None:
    for path in (ROOT / "benchmarks" / "configs").glob("*.toml"):
        config = BenchConfig.from_toml(path)
        if config.split != "all" and not config.users:
            source = config.training_config or config.split_config
            assert source and (ROOT / source).is_file(), path.name


def test_bench_run_help_lists_the_config_keys_with_the_help_and_default_of_their_fields() -> None:
    from click.testing import CliRunner

    from tbhns_opensearch.cli import cli

    output = " ".join(CliRunner().invoke(cli, ["bench", "run", "--help"]).output.split())
    assert 'split evaluate this split: validation or test (the split training held out), or all [default: "test"]' in (
        output
    )
    assert "hybrid_depth hybrid: candidates per sub-query" in output and "alpha weight of the user vector" in output


def test_encode_workers_reach_the_catalog_encoder_and_a_bad_count_is_refused(tmp_path: Path, monkeypatch) -> None:
    """`encode_workers` fans the catalog's ingest out (Encoder.workers), and the encoder is closed after it."""
    from tbhns_opensearch import encoder as encoder_module
    from tbhns_opensearch.bench.runner import BenchRun
    from tbhns_opensearch.config import OpenSearchConfig
    from tbhns_opensearch.index import ingest

    made: list[dict[str, object]] = []

    class Recorded:
        def __init__(self, name: str, **settings: object) -> None:
            made.append({"name": name, **settings, "closed": False})

        def __enter__(self) -> Recorded:
            return self

        def __exit__(self, *_: object) -> None:
            made[-1]["closed"] = True

    monkeypatch.setattr(encoder_module, "Encoder", Recorded)
    monkeypatch.setattr(ingest, "stored_fingerprint", lambda client, alias: None)
    monkeypatch.setattr(ingest, "ingest_products", lambda client, products, encoder, *_: None)
    config = BenchConfig(title="t", systems=BM25, catalog="icecat", split="all", encode_workers=2)
    BenchRun(config, OpenSearchConfig(url="http://127.0.0.1:9"), tmp_path)._ensure_ingested(None, "m", "fp")
    assert made == [{"name": "m", "backend": "auto", "bulk": True, "workers": 2, "closed": True}]
    with pytest.raises(BenchError, match=r"encode_workers = 0: give 1 or more encoder processes"):
        BenchConfig(title="t", systems=BM25, catalog="icecat", split="all", encode_workers=0)
