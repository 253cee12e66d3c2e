"""Templates and ingest against the real node."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tbhns_opensearch.catalog import Product, read_catalog
from tbhns_opensearch.cli import cli
from tbhns_opensearch.encoder import native_bf16
from tbhns_opensearch.errors import IngestError
from tbhns_opensearch.index.ingest import IngestConfig, ingest_products
from tbhns_opensearch.index.templates import (
    IndexConfig,
    alias_targets,
    create_index,
    render_product_template,
    swap_alias,
)
from tbhns_opensearch.query import SearchClient
from tbhns_opensearch.query.builders import build_bm25, build_knn
from tbhns_opensearch.users.store import fetch_product_vectors
from tests.helpers import FIXTURES, fixture_products

pytestmark = pytest.mark.integration
QUIET = IngestConfig(progress=False)


def _count(os_client, alias: str) -> int:
    return os_client.count(index=alias)["count"]


def test_index_from_template_has_knn_vector_mapping(os_client, index_config) -> None:
    index = create_index(os_client, index_config)
    mapping = os_client.indices.get_mapping(index=index)[index]["mappings"]["properties"]
    assert mapping["embedding"]["type"] == "knn_vector"
    assert mapping["embedding"]["dimension"] == index_config.dimension
    assert mapping["embedding"]["method"]["engine"] == "lucene"
    assert os_client.indices.get_settings(index=index)[index]["settings"]["index"]["knn"] == "true"


@pytest.fixture(scope="module")
def fixture_catalog(os_client, encoder):  # type: ignore[no-untyped-def]
    """Icecat and Amazon UK toys fixtures (3,000 products) ingested once for this module."""
    config = IndexConfig(alias="test-catalog")
    products = fixture_products("icecat_products.jsonl") + fixture_products("toys_products.jsonl")
    summary = ingest_products(os_client, products, encoder, config, QUIET)
    yield config, products, summary
    os_client.indices.delete(index="test-catalog-*", ignore_unavailable=True)


def test_ingest_indexes_every_product_with_a_vector(os_client, encoder, fixture_catalog) -> None:
    config, products, summary = fixture_catalog
    assert summary.indexed == len(products) == 3000
    assert summary.failures == []
    assert _count(os_client, config.alias) == len(products)
    with_vector = os_client.count(index=config.alias, body={"query": {"exists": {"field": "embedding"}}})["count"]
    assert with_vector == len(products)
    document = os_client.get(index=config.alias, id=products[0].id)["_source"]
    assert "embedding" not in document  # kept out of _source (fetch cost); read from doc values instead
    sample = products[::60]  # 50 products spread over the catalog (and its segments)
    stored = fetch_product_vectors(os_client, config.alias, [p.id for p in sample])
    expected = encoder.encode([p.text_for_embedding() for p in sample])  # (50, dim)
    np.testing.assert_allclose(np.stack([stored[p.id] for p in sample]), expected, atol=1e-5)


@pytest.mark.parametrize(
    ("query", "expected_id"),
    [
        ("Integral 2GB SD Card memory card", "1625640"),
    ],
)
def test_bm25_finds_the_named_product(os_client, fixture_catalog, query: str, expected_id: str) -> None:
    config, _, _ = fixture_catalog
    hits = os_client.search(index=config.alias, body=build_bm25(query, 3))["hits"]["hits"]
    assert hits[0]["_id"] == expected_id


def test_bm25_and_knn_find_judged_products(os_client, encoder, fixture_catalog) -> None:
    """For judged Icecat queries, each mode's top 10 holds a product judged relevant (grade >= 2)."""
    from tbhns_opensearch.catalog import read_judgments_csv

    config, _, _ = fixture_catalog
    relevant: dict[str, set[str]] = {}
    for judgment in read_judgments_csv(FIXTURES / "icecat_judgments.csv"):
        if judgment.grade >= 2:
            relevant.setdefault(judgment.query, set()).add(judgment.product_id)
    for query in ("bluetooth speaker", "headphones", "memory card", "smartwatch", "gaming mouse pad"):
        bm25 = {hit["_id"] for hit in os_client.search(index=config.alias, body=build_bm25(query, 10))["hits"]["hits"]}
        vector = encoder.encode([query])[0]
        knn = {hit["_id"] for hit in os_client.search(index=config.alias, body=build_knn(vector, 10))["hits"]["hits"]}
        assert bm25 & relevant[query], f"bm25 top 10 for {query!r} has no relevant product"
        assert knn & relevant[query], f"knn top 10 for {query!r} has no relevant product"


def test_category_prefix_filter_inside_knn(os_client, encoder, fixture_catalog) -> None:
    from tbhns_opensearch.query.builders import Filters

    config, products, _ = fixture_catalog
    top_level = next(p.taxonomy_path[0] for p in products if p.taxonomy_path)
    vector = encoder.encode(["toy car"])[0]
    body = build_knn(vector, 20, Filters(category=(top_level,)))
    hits = os_client.search(index=config.alias, body=body)["hits"]["hits"]
    assert len(hits) == 20
    assert all(hit["fields"]["category_names"][0] == top_level for hit in hits)


def test_rerun_leaves_the_count_unchanged(os_client, encoder, index_config) -> None:
    products = fixture_products("toys_products.jsonl")[:200]
    first = ingest_products(os_client, products, encoder, index_config, QUIET)
    second = ingest_products(os_client, products, encoder, index_config, QUIET)
    assert first.index == second.index
    assert _count(os_client, index_config.alias) == 200


def test_rebuild_swaps_the_alias_and_drops_the_old_index(os_client, encoder, index_config) -> None:
    products = fixture_products("toys_products.jsonl")[:50]
    first = ingest_products(os_client, products, encoder, index_config, QUIET)
    second = ingest_products(
        os_client, products[:30], encoder, index_config, IngestConfig(rebuild=True, progress=False)
    )
    assert second.index != first.index
    assert alias_targets(os_client, index_config.alias) == [second.index]
    assert not os_client.indices.exists(index=first.index)
    assert _count(os_client, index_config.alias) == 30


def test_cli_ingest_of_a_malformed_catalog_indexes_good_lines_and_names_bad_ones(
    opensearch_config, index_config, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("OPENSEARCH_URL", opensearch_config.url)
    rejects = tmp_path / "rejects.jsonl"
    catalog = FIXTURES / "malformed_catalog.jsonl"
    good = list(read_catalog(catalog))
    result = CliRunner().invoke(
        cli, ["ingest", str(catalog), "--alias", index_config.alias, "--rejects", str(rejects), "--json"]
    )
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["indexed"] == len(good) > 0
    assert summary["rejected"] >= 3
    lines = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert {entry["field"] for entry in lines} >= {"title", "price"}
    assert all(entry["line"] > 0 for entry in lines)
    assert "malformed_catalog.jsonl:" in result.stderr


def test_aliases_that_prefix_each_other_get_their_own_template(os_client) -> None:
    base = f"test-prefix-{uuid.uuid4().hex[:8]}"
    configs = [IndexConfig(alias=base, dimension=8), IndexConfig(alias=f"{base}-eu", dimension=16)]
    try:
        indices = [create_index(os_client, config) for config in configs]
        for config, index in zip(configs, indices):
            mapping = os_client.indices.get_mapping(index=index)[index]["mappings"]["properties"]
            assert mapping["embedding"]["dimension"] == config.dimension
    finally:
        os_client.indices.delete(index=f"{base}-*", ignore_unavailable=True)
        for config in configs:
            os_client.indices.delete_index_template(name=config.template_name, ignore=[404])


def test_a_failing_last_bulk_request_is_an_error_not_a_hang(os_client, encoder, index_config) -> None:
    products = [*fixture_products("toys_products.jsonl")[:20], Product(id="x" * 513, title="Too long an id")]
    outcome: list[BaseException | None] = []

    def ingest() -> None:
        try:
            ingest_products(os_client, products, encoder, index_config, QUIET)
            outcome.append(None)
        except IngestError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=ingest, daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive(), "ingest hung after its last bulk request failed"
    assert isinstance(outcome[0], IngestError) and f"no alias {index_config.alias} was made" in str(outcome[0])
    assert alias_targets(os_client, index_config.alias) == []  # a first ingest that failed serves nothing


def test_rebuild_from_an_empty_catalog_keeps_the_complete_index(os_client, encoder, index_config) -> None:
    products = fixture_products("toys_products.jsonl")[:40]
    complete = ingest_products(os_client, products, encoder, index_config, QUIET)
    with pytest.raises(IngestError, match="no product was indexed.*never replaces one"):
        ingest_products(os_client, [], encoder, index_config, IngestConfig(rebuild=True, progress=False))
    assert alias_targets(os_client, index_config.alias) == [complete.index]
    assert _count(os_client, index_config.alias) == 40
    assert os_client.indices.get(index=f"{index_config.alias}-*").keys() == {complete.index}  # no empty leftover


def test_indices_left_by_killed_ingests_are_deleted_by_the_next_new_index(os_client, encoder, index_config) -> None:
    orphan = f"{index_config.alias}-20200101000000-000"  # what a run killed before its alias swap leaves
    os_client.indices.create(index=orphan)
    lookalike = f"{index_config.alias}-v2-20200101000000-000"  # another alias's index: not ours
    os_client.indices.create(index=lookalike)
    summary = ingest_products(os_client, fixture_products("toys_products.jsonl")[:10], encoder, index_config, QUIET)
    assert not os_client.indices.exists(index=orphan)
    assert os_client.indices.exists(index=lookalike)
    assert alias_targets(os_client, index_config.alias) == [summary.index]


def test_an_encoder_of_another_dimension_than_the_index_is_a_clear_ingest_error(
    os_client, encoder, index_config
) -> None:
    small = IndexConfig(alias=index_config.alias, dimension=8)
    swap_alias(os_client, index_config.alias, create_index(os_client, small))
    with pytest.raises(
        IngestError, match="holds 8-dimensional vectors but the encoder makes 384; rerun with --rebuild"
    ):
        ingest_products(os_client, fixture_products("toys_products.jsonl")[:5], encoder, index_config, QUIET)


@pytest.fixture(scope="module")
def exported_minilm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged base model exported by `tbhns export` (ONNX graph, 128 tokens)."""
    exported = tmp_path_factory.mktemp("encoders") / "minilm"
    result = CliRunner().invoke(cli, ["export", "all-MiniLM-L6-v2", str(exported), "--max-seq-length", "128"])
    assert result.exit_code == 0, result.output
    assert "ONNX min cosine to torch 1.0000" in result.output or "ONNX min cosine to torch 0.9999" in result.output
    return exported


@pytest.mark.parametrize("backend", ["onnx", "auto"])
def test_cli_export_then_ingest_writes_vectors_within_1e4_cosine_of_torch(
    os_client,
    encoder,
    opensearch_config,
    index_config,
    exported_minilm: Path,
    tmp_path: Path,
    monkeypatch,
    backend: str,
) -> None:
    """ONNX fp32, and what `auto` picks for a catalog: bfloat16 torch on a CPU with AMX / AVX-512 BF16."""
    monkeypatch.setenv("OPENSEARCH_URL", opensearch_config.url)
    catalog = tmp_path / "catalog.jsonl"
    products = fixture_products("icecat_products.jsonl")[:200]  # titles, descriptions, attributes: mixed lengths
    catalog.write_text("".join(json.dumps(p.to_dict()) + "\n" for p in products))
    result = CliRunner().invoke(
        cli,
        [
            "ingest",
            str(catalog),
            "--encoder",
            str(exported_minilm),
            "--alias",
            index_config.alias,
            "--backend",
            backend,
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    expected = "torch-bf16" if backend == "auto" and native_bf16("cpu") else "onnx"
    assert summary["backend"] == expected and summary["indexed"] == 200
    stored = fetch_product_vectors(os_client, index_config.alias, [p.id for p in products])
    saved = encoder.model.max_seq_length
    encoder.model.max_seq_length = 128
    try:
        reference = encoder.encode([p.text_for_embedding() for p in products])  # torch, (200, dim)
    finally:
        encoder.model.max_seq_length = saved
    cosines = np.sum(np.stack([stored[p.id] for p in products]) * reference, axis=1)
    assert cosines.min() >= 1 - 1e-4


def test_bench_ingest_compares_runtimes_side_by_side(
    opensearch_config, index_config, exported_minilm: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("OPENSEARCH_URL", opensearch_config.url)
    table = tmp_path / "throughput.md"
    result = CliRunner().invoke(
        cli,
        [
            "bench",
            "ingest",
            "--data-dir",
            str(FIXTURES / "homedepot"),
            "--dataset",
            "homedepot",
            "--limit",
            "4",
            "--encoder",
            str(exported_minilm),
            "--backend",
            "torch",
            "--backend",
            "onnx",
            "--alias",
            index_config.alias,
            "--out",
            str(table),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout[result.stdout.index("[") :])
    assert [row["backend"] for row in rows] == ["torch", "onnx"] and all(row["products"] == 4 for row in rows)
    assert rows[0]["min_cosine"] == pytest.approx(1.0, abs=1e-6) and rows[1]["min_cosine"] >= 1 - 1e-4
    assert all(row["encode_only_per_s"] > 0 and row["ingest_per_s"] > 0 for row in rows)
    assert "| onnx |" in table.read_text() and "ingest vs torch" in table.read_text()


def test_inner_product_ranks_the_unit_vectors_as_cosine_does(os_client, encoder, index_config) -> None:
    assert index_config.space_type == "innerproduct"  # the default: no per-comparison norms, unlike COSINE
    cosine = IndexConfig(alias=f"{index_config.alias}-cos", space_type="cosinesimil")
    products = fixture_products("toys_products.jsonl")[:80]
    try:
        for config in (index_config, cosine):
            ingest_products(os_client, products, encoder, config, QUIET)
        query = encoder.encode(["wooden train set for toddlers"])[0]
        pages = [
            os_client.search(index=config.alias, body=build_knn(query, 20))["hits"]["hits"]
            for config in (index_config, cosine)
        ]
    finally:
        os_client.indices.delete_index_template(name=cosine.template_name, ignore=[404])
    inner, cos = ([(hit["_id"], hit["_score"]) for hit in page] for page in pages)
    assert [i for i, _ in inner] == [i for i, _ in cos] and len(inner) == 20
    # unit vectors: inner product 1 + cos (cos >= 0) against cosinesimil's (1 + cos) / 2
    assert all(abs(a - 2 * b) < 1e-4 for (_, a), (_, b) in zip(inner, cos) if a >= 1)


def test_an_index_made_before_title_bytes_takes_new_documents_and_serves_its_titles(
    os_client,
    opensearch_config,
    encoder,
    index_config,  # type: ignore[no-untyped-def]
) -> None:
    body = render_product_template(index_config)["template"]
    body["mappings"]["properties"].pop("title_bytes")  # the template as it was: titles as a keyword multi-field
    body["mappings"]["properties"]["title"]["fields"] = {"keyword": {"type": "keyword", "ignore_above": 512}}
    old = f"{index_config.alias}-20260101000000-000"
    os_client.indices.create(index=old, body=body)
    swap_alias(os_client, index_config.alias, old)
    products = fixture_products("toys_products.jsonl")[:40]
    summary = ingest_products(os_client, products, encoder, index_config, QUIET)
    assert (summary.index, summary.indexed, summary.failures) == (old, 40, [])  # strict mapping: nothing refused
    hits = SearchClient(opensearch_config, index_config.alias, encoder).search(products[0].title, mode="bm25", k=3).hits
    assert hits[0].id == products[0].id and hits[0].title == products[0].title  # read with stored fields
