"""The bm25 sampler and the hybrid teacher wired to the real node, and `tbhns train` end to end with each."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tbhns_opensearch.cli import cli
from tbhns_opensearch.encoder import Encoder
from tbhns_opensearch.errors import TrainingError
from tbhns_opensearch.eval.splits import read_split
from tbhns_opensearch.index.templates import alias_targets
from tbhns_opensearch.training.examples import TrainingPair
from tbhns_opensearch.training.mining import MinedHits, bm25_hits, ensure_catalog_index
from tbhns_opensearch.training.negatives import FalseNegativeFilter, get_sampler
from tests.helpers import FIXTURES, fixture_products

pytestmark = pytest.mark.integration
PRODUCTS = fixture_products("toys_products.jsonl")[:300]


def test_bm25_sampler_returns_top_non_relevant_hits(os_client, index_config) -> None:  # type: ignore[no-untyped-def]
    ensure_catalog_index(os_client, PRODUCTS, index_config.alias, "all-MiniLM-L6-v2", "cpu")
    index = alias_targets(os_client, index_config.alias)
    ensure_catalog_index(os_client, PRODUCTS, index_config.alias, "all-MiniLM-L6-v2", "cpu")
    assert alias_targets(os_client, index_config.alias) == index  # a complete index is reused, not rebuilt

    positive = next(p for p in PRODUCTS if "kinetic sand" in p.title.lower())
    query = " ".join(positive.title.split()[:3])
    scored = bm25_hits(os_client, index_config.alias, [query, "model train"], depth=20)
    scores = [score for _, score in scored[query]]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0  # BM25 scores, best first
    hits = {text: [pid for pid, _ in ranked] for text, ranked in scored.items()}
    assert positive.id in hits[query][:5] and len(hits[query]) == 20
    relevant = frozenset({positive.id, hits[query][1]})
    pair = TrainingPair(query, positive.id, relevant, "generated")

    search = MinedHits()
    search.update(hits)
    false_negatives = FalseNegativeFilter.from_products(PRODUCTS)
    sampler = get_sampler("bm25", search=search, false_negatives=false_negatives, count=3, depth=20)
    negatives = sampler.sample(pair, seed=0, epoch=0)
    ids = [n.product_id for n in negatives]
    expected = [pid for pid in hits[query] if not false_negatives.rejects(pair, pid)][:3]
    assert ids == expected and not set(ids) & relevant
    assert {n.level for n in negatives} == {"bm25"} and sampler.log.counts["bm25"] == 3


def test_bm25_mining_on_a_missing_alias_names_the_query_and_the_error(os_client) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(
        TrainingError,
        match=r"BM25 search for 'kite' on no-such-training-alias failed \(404\): "
        r"index_not_found_exception; is the alias ingested\?",
    ):
        bm25_hits(os_client, "no-such-training-alias", ["kite"], 5)


def _train_tiny(tmp_path: Path, opensearch_config, tables: str, top: str = "") -> Path:  # type: ignore[no-untyped-def]
    """`tbhns train` on 60 toy products with generated queries, 2 steps of 4 rows; `tables` after [data]."""
    config = tmp_path / "tiny.toml"
    config.write_text(f"""
batch_size = 4
max_steps = 2
max_seq_length = 16
eval_every = 2
{top}
[data]
catalog = "{FIXTURES / "toys_products.jsonl"}"
queries = "generated"
catalog_limit = 60
relevance_threshold = 2
{tables}""")
    out = tmp_path / "model"
    result = CliRunner().invoke(
        cli,
        ["train", str(config), "--output", str(out), "--device", "cpu"],
        env={"OPENSEARCH_URL": opensearch_config.url},
    )
    assert result.exit_code == 0, result.output
    return out


def test_train_command_with_bm25_writes_a_model_directory(
    opensearch_config, os_client, index_config, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    out = _train_tiny(
        tmp_path,
        opensearch_config,
        f"""[sampler]
name = "bm25"
count = 1
alias = "{index_config.alias}"
""",
    )
    card = json.loads((out / "model_card.json").read_text())
    assert card["sampler"]["name"] == "bm25" and card["sampler"]["level_counts"].get("bm25", 0) > 0
    assert card["data"]["counts"]["train_pairs_generated"] > 0 and card["data"]["counts"]["train_pairs_real"] == 0
    assert card["training"]["steps"] == 2 and (out / "MODEL_CARD.md").is_file()
    assert set(read_split(out / "split.json").values()) == {"train", "validation", "test"}
    texts = ["wooden jigsaw", "remote control car"]
    torch_vectors, onnx_vectors = Encoder(str(out)).encode(texts), Encoder(str(out), backend="onnx").encode(texts)
    assert np.min(np.sum(torch_vectors * onnx_vectors, axis=1)) >= 1 - 1e-4
    assert os_client.count(index=index_config.alias)["count"] == 60
    gate = json.loads((out / "tbhns_manifest.json").read_text())["int8_gate"]  # int8 vs fp32 on validation
    assert gate["queries"] > 0 and gate["products"] == 60 and set(gate["fp32"]) == {"ndcg@10", "recall@24"}
    assert ("onnx-int8" in json.loads((out / "tbhns_manifest.json").read_text())["backends"]) == gate["accepted"]
    assert "int8 retrieval gate" in (out / "MODEL_CARD.md").read_text()


def test_train_command_with_a_hybrid_teacher_distills_from_bm25_on_the_node(
    opensearch_config, os_client, index_config, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    out = _train_tiny(
        tmp_path,
        opensearch_config,
        f"""[sampler]
name = "random"
alias = "{index_config.alias}"
[experimental.distill]
candidates = 3
depth = 8
""",
        top="quantize = false",
    )
    assert os_client.count(index=index_config.alias)["count"] == 60  # the teacher's BM25 ran on the node
    card = json.loads((out / "model_card.json").read_text())
    assert card["config"]["experimental"]["distill"]["candidates"] == 3 and card["training"]["steps"] == 2
    assert (
        "distilled from a hybrid teacher (BM25 weight 0.6, encoder all-MiniLM-L6-v2, depth 8): 3 ranked candidates"
        in (out / "MODEL_CARD.md").read_text()
    )


@pytest.mark.parametrize("encoder", ["", "all-MiniLM-L6-v2"])  # the base model as it starts, or a named encoder
def test_hybrid_teacher_on_the_node_fuses_its_bm25_scores_with_the_encoder(
    opensearch_config, os_client, index_config, encoder: str
) -> None:  # type: ignore[no-untyped-def]
    from tbhns_opensearch.query.fusion import HybridConfig, fuse
    from tbhns_opensearch.training.config import DataConfig, SamplerConfig, TrainConfig
    from tbhns_opensearch.training.data import prepare_data
    from tbhns_opensearch.training.experimental.config import DistillConfig, ExperimentalConfig
    from tbhns_opensearch.training.experimental.teacher import hybrid_teacher
    from tbhns_opensearch.training.mining import SamplerContext
    from tbhns_opensearch.training.retrieval import product_index
    from tbhns_opensearch.training.trainer import load_model

    data_config = DataConfig(catalog=str(FIXTURES / "toys_products.jsonl"), queries="generated", catalog_limit=60)
    config = TrainConfig(
        data=data_config,
        sampler=SamplerConfig(name="random", alias=index_config.alias),
        max_seq_length=16,
        experimental=ExperimentalConfig(distill=DistillConfig(candidates=2, depth=5, encoder=encoder)),
    )
    data, model = prepare_data(config.data, config.seed), load_model(config)
    index = product_index(model, data.products)
    context = SamplerContext(
        config, data, model, index.vectors, FalseNegativeFilter.from_products(data.products), opensearch_config
    )
    teacher = hybrid_teacher(context, config.experimental.distill)  # type: ignore[arg-type]
    query = data.train_pairs[0].query
    bm25 = bm25_hits(os_client, index_config.alias, [query], 5)[query]
    dense = index.search_scored(model.encode([query], normalize_embeddings=True), 5)[0]
    expected = fuse([bm25, dense], HybridConfig(depth=5))  # the served hybrid; a named encoder at 16 tokens too
    assert [pid for pid, _ in teacher.ranked[query]] == [pid for pid, _ in expected]
    assert [score for _, score in teacher.ranked[query]] == pytest.approx([score for _, score in expected], abs=1e-5)
    assert bm25 and {pid for pid, _ in teacher.ranked[query]} == {pid for pid, _ in bm25 + dense}
