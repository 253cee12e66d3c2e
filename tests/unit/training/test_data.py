"""Training data from configs on the committed fixtures: splits by query, unseen test products, real vs generated."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tbhns_opensearch.catalog import Product, read_judgments_csv
from tbhns_opensearch.errors import ConfigError, TrainingError
from tbhns_opensearch.eval.queries import LabelledQuery, query_key, write_labelled_queries
from tbhns_opensearch.training.config import DataConfig
from tbhns_opensearch.training.data import build_taxonomy, prepare_data, sample_texts
from tests.helpers import FIXTURES

TOYS = DataConfig(
    catalog=str(FIXTURES / "toys_products.jsonl"),
    queries="generated",
    catalog_limit=600,
    relevance_threshold=2,
    max_eval_relevant=5,
    max_positives_per_query=3,
)


@pytest.fixture(scope="module")
def toys():  # type: ignore[no-untyped-def]
    return prepare_data(TOYS, seed=13)


def test_generated_queries_are_counted_as_generated(toys) -> None:  # type: ignore[no-untyped-def]
    report = toys.report
    assert report["products"] == len(toys.products) == 600
    assert report["train_pairs_real"] == report["validation_queries_real"] == report["test_queries_real"] == 0
    assert report["train_pairs_generated"] == len(toys.train_pairs) > 0
    assert {p.source for p in toys.train_pairs} == {"generated"}
    assert set(toys.test.sources.values()) == {"generated"}


def test_no_query_in_two_splits(toys) -> None:  # type: ignore[no-untyped-def]
    train = {query_key(p.query) for p in toys.train_pairs}
    assert not train & set(toys.validation.queries)
    assert not train & set(toys.test.queries)
    assert not set(toys.validation.queries) & set(toys.test.queries)


def test_test_products_were_never_training_positives(toys) -> None:  # type: ignore[no-untyped-def]
    held_out = {
        pid
        for split in (toys.validation, toys.test)
        for grades in split.qrels.values()
        for pid, grade in grades.items()
        if grade
    }
    assert held_out
    assert not {p.positive_id for p in toys.train_pairs} & held_out
    assert toys.report["train_pairs_dropped_unseen"] > 0


def test_eval_queries_are_narrow_and_have_a_relevant_product(toys) -> None:  # type: ignore[no-untyped-def]
    for grades in toys.test.qrels.values():
        assert 1 <= sum(g >= 2 for g in grades.values()) <= 5
    report = toys.report
    assert report.get("test_queries_dropped_broad", 0) + report.get("validation_queries_dropped_broad", 0) > 0


def test_positives_per_query_are_capped(toys) -> None:  # type: ignore[no-untyped-def]
    per_query: dict[str, int] = {}
    for pair in toys.train_pairs:
        per_query[query_key(pair.query)] = per_query.get(query_key(pair.query), 0) + 1
    assert max(per_query.values()) == 3


def test_same_seed_same_data() -> None:
    a, b = prepare_data(TOYS, seed=13), prepare_data(TOYS, seed=13)
    assert a.train_pairs == b.train_pairs and a.test == b.test
    assert prepare_data(TOYS, seed=14).test != a.test


def test_real_queries_from_a_file_keep_judged_products(tmp_path: Path) -> None:
    path = tmp_path / "queries.jsonl"
    judgments = read_judgments_csv(FIXTURES / "icecat_judgments.csv")
    write_labelled_queries(path, (LabelledQuery.from_judgment(j) for j in judgments))
    config = DataConfig(
        catalog=str(FIXTURES / "icecat_products.jsonl"),
        queries=str(path),
        catalog_limit=100,
        unseen_products=False,
        validation=0.2,
        test=0.2,
    )
    data = prepare_data(config, seed=13)
    judged = {j.product_id for j in judgments}
    assert judged <= {p.id for p in data.products}  # judged products are always kept
    assert data.report["train_pairs_generated"] == 0 and data.report["train_pairs_real"] == len(data.train_pairs)
    assert data.report["test_queries_real"] == len(data.test.queries)
    texts = sample_texts(data, n=2)
    assert len(texts) == 4 and texts[:2] == list(data.validation.queries.values())[:2]


def test_induced_taxonomy_by_clustering_is_named_so() -> None:
    products = [Product(str(i), f"product {i}") for i in range(12)]
    vectors = np.random.default_rng(0).normal(size=(12, 8))
    config = DataConfig(catalog="c.jsonl", taxonomy="induced:clustering")
    taxonomy = build_taxonomy(config, products, vectors, seed=0)
    assert taxonomy.source == "induced:clustering"
    assert all(len(taxonomy.leaf_of(p.id)) == 2 for p in products)


def test_catalog_without_taxonomy_says_how_to_induce_one() -> None:
    with pytest.raises(TrainingError, match=r"induced:clustering"):
        build_taxonomy(DataConfig(catalog="c.jsonl"), [Product("a", "A")], None, seed=0)


def test_assigned_taxonomy_feeds_the_sampler_and_leaves_product_texts_alone(tmp_path: Path) -> None:
    from tbhns_opensearch.taxonomy_assign import Assignment, write_assignments

    path = tmp_path / "assigned.jsonl"
    write_assignments([Assignment("a", ("Hardware", "Tools"), 0.9), Assignment("b", (), 0.0)], path)
    products = [Product("a", "Drill"), Product("b", "Thing")]
    taxonomy = build_taxonomy(
        DataConfig(catalog="c.jsonl", taxonomy="assigned", taxonomy_file=str(path)), products, None, seed=0
    )
    assert taxonomy.source == "assigned"
    assert taxonomy.leaf_of("a") == ("Hardware", "Tools") and taxonomy.is_unknown("b")
    assert products[0].taxonomy_path == () and products[0].text_for_embedding() == "Drill"


def test_generated_pairs_join_real_ones_and_never_repeat_an_evaluation_query(tmp_path: Path) -> None:
    colours, things = (
        ("red", "blue", "green", "black", "white", "grey"),
        ("kettle", "toaster", "blender", "mixer", "grill"),
    )
    titles = [f"{colour} {thing}" for colour in colours for thing in things]  # a title is its own title query
    catalog, queries = tmp_path / "catalog.jsonl", tmp_path / "queries.jsonl"
    catalog.write_text("".join(json.dumps({"id": f"p{i}", "title": t}) + "\n" for i, t in enumerate(titles)))
    write_labelled_queries(queries, (LabelledQuery(t, f"p{i}", 2) for i, t in enumerate(titles[:20])))  # 10 unasked
    config = DataConfig(catalog=str(catalog), queries=str(queries), unseen_products=False, validation=0.3, test=0.3)
    real = prepare_data(config, seed=13)
    mixed = prepare_data(replace(config, generated_pairs=len(titles)), seed=13)
    assert mixed.test == real.test and mixed.validation == real.validation
    assert {p for p in mixed.train_pairs if p.source == "real"} == set(real.train_pairs)
    assert {p.query for p in mixed.train_pairs if p.source == "generated"} == set(titles[20:])
    assert mixed.report["train_pairs_generated"] == 10
    assert not {query_key(p.query) for p in mixed.train_pairs} & (set(real.test.queries) | set(real.validation.queries))


def test_generated_pairs_need_real_queries() -> None:
    with pytest.raises(ConfigError, match=r"generated_pairs adds generated queries to real ones"):
        DataConfig(catalog="c.jsonl", queries="generated", generated_pairs=10)
