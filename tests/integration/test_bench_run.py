"""`tbhns bench run` end to end on a small fixture catalog against the real node."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tbhns_opensearch.catalog import read_judgments_csv, write_catalog_jsonl
from tbhns_opensearch.training.examples import LabelledQuery, write_labelled_queries
from tests.conftest import FIXTURES, fixture_products, run_bench

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
