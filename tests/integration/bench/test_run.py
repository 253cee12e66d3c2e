"""`tbhns bench run` end to end on a small fixture catalog against the real node."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from tbhns_opensearch.bench.runner import alias_for, query_ids
from tbhns_opensearch.catalog import read_judgments_csv, write_catalog_jsonl
from tbhns_opensearch.catalog.judgments import graded_qrels
from tbhns_opensearch.config import DEFAULT_ENCODER
from tbhns_opensearch.encoder import resolve_model_path
from tbhns_opensearch.eval.queries import LabelledQuery, write_labelled_queries
from tbhns_opensearch.eval.runs import read_qrels, read_run
from tbhns_opensearch.eval.splits import split_assignment, split_by_query, write_split
from tests.helpers import FIXTURES, fixture_products, run_bench

pytestmark = pytest.mark.integration
QUERIES = ("bluetooth speaker", "smartwatch", "gaming mouse pad")


def test_bench_run_writes_runs_report_and_plots(opensearch_config, os_client, tmp_path: Path, monkeypatch) -> None:
    judgments = [j for j in read_judgments_csv(FIXTURES / "icecat_judgments.csv") if j.query in QUERIES]
    judged = {j.product_id for j in judgments}
    products = [p for p in fixture_products("icecat_products.jsonl") if p.id in judged][:250]
    products += [p for p in fixture_products("icecat_products.jsonl") if p.id not in judged][:100]
    write_catalog_jsonl(products, tmp_path / "bench_catalog.jsonl")
    write_labelled_queries(tmp_path / "queries.jsonl", [LabelledQuery.from_judgment(j) for j in judgments])
    (tmp_path / "bench.toml").write_text(
        f'title = "fixture bench"\ncatalog = "{tmp_path / "bench_catalog.jsonl"}"\n'
        f'queries = "{tmp_path / "queries.jsonl"}"\nsplit = "all"\nconcurrency = [1, 2]\n'
        '[[systems]]\nname = "bm25"\nmode = "bm25"\n'
        '[[systems]]\nname = "semantic-base"\nmode = "semantic"\nencoder = "all-MiniLM-L6-v2"\n'
    )
    out = tmp_path / "report"
    output = run_bench(tmp_path / "bench.toml", out, opensearch_config, os_client, "bench-bench-catalog-*", monkeypatch)
    report = json.loads((out / "report.json").read_text())
    assert {system["name"] for system in report["systems"]} == {"bm25", "semantic-base"}
    assert (out / "runs" / "bm25.trec").read_text().count("\n") > 0
    assert (out / "recall_at_k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "**real**" in (out / "summary.md").read_text()
    assert "| bm25 |" in output


def test_bench_rebuilds_an_index_whose_catalog_changed_at_the_same_size(
    opensearch_config, os_client, tmp_path: Path, monkeypatch
) -> None:
    products = fixture_products("icecat_products.jsonl")[:30]
    catalog = tmp_path / "edited_catalog.jsonl"
    write_catalog_jsonl(products, catalog)
    queries = [LabelledQuery("computer monitor", products[0].id, 1)]
    write_labelled_queries(tmp_path / "queries.jsonl", queries)
    (tmp_path / "bench.toml").write_text(
        f'title = "stale"\ncatalog = "{catalog}"\nqueries = "{tmp_path / "queries.jsonl"}"\nsplit = "all"\n'
        'concurrency = [1]\nbaselines = ["semantic"]\n'
        '[[systems]]\nname = "semantic"\nmode = "semantic"\nencoder = "all-MiniLM-L6-v2"\n'
    )
    alias = alias_for(str(catalog), "all-MiniLM-L6-v2")

    def bench_and_read_index() -> tuple[str, str]:
        run_bench(tmp_path / "bench.toml", tmp_path / "report", opensearch_config, os_client, "none", monkeypatch)
        (index,) = os_client.indices.get_alias(name=alias)
        return index, os_client.get(index=alias, id=products[0].id)["_source"]["title"]

    try:
        first_index, _ = bench_and_read_index()
        assert bench_and_read_index()[0] == first_index  # same catalog: the index is reused
        edited = [replace(products[0], title="Claw hammer, 16 oz"), *products[1:]]  # same size, other content
        write_catalog_jsonl(edited, catalog)
        index, title = bench_and_read_index()
    finally:
        os_client.indices.delete(index=f"{alias}*")
    assert index != first_index
    assert title == "Claw hammer, 16 oz"


def test_bench_evaluates_the_split_its_trained_systems_model_was_held_out_on(
    opensearch_config, os_client, tmp_path: Path, monkeypatch
) -> None:
    products = fixture_products("icecat_products.jsonl")[:300]
    known = {p.id for p in products}
    judgments = [j for j in read_judgments_csv(FIXTURES / "icecat_judgments.csv") if j.product_id in known]
    labelled = [LabelledQuery.from_judgment(j) for j in judgments]
    write_catalog_jsonl(products, tmp_path / "split_catalog.jsonl")
    write_labelled_queries(tmp_path / "queries.jsonl", labelled)
    model = tmp_path / "runs" / "trained"  # the base model's files, with the split.json a training run wrote
    model.mkdir(parents=True)
    for item in Path(resolve_model_path(DEFAULT_ENCODER)).iterdir():
        (model / item.name).symlink_to(item)
    splits = split_by_query(labelled, seed=7, validation=0.2, test=0.2)  # a training run's, not the bench's
    write_split(model, split_assignment(splits))
    (tmp_path / "bench.toml").write_text(
        f'title = "split bench"\ncatalog = "{tmp_path / "split_catalog.jsonl"}"\n'
        f'queries = "{tmp_path / "queries.jsonl"}"\nsplit = "test"\nconcurrency = [1]\nbaselines = ["trained"]\n'
        f'[[systems]]\nname = "trained"\nmode = "semantic"\nencoder = "{model}"\n'
    )
    out = tmp_path / "report"
    run_bench(tmp_path / "bench.toml", out, opensearch_config, os_client, "bench-split-catalog-*", monkeypatch)
    ids = query_ids([j.query for j in splits.test])
    assert read_qrels(out / "runs" / "qrels.txt") == graded_qrels(splits.test, key=ids.__getitem__)
    assert set(read_run(out / "runs" / "trained.trec")) == set(ids.values())
