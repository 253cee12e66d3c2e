"""The hybrid teacher's candidates and scores, the rows that carry them, and the distillation loss."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tbhns_opensearch.catalog import Product
from tbhns_opensearch.config import OpenSearchConfig
from tbhns_opensearch.errors import ConfigError, TrainingError
from tbhns_opensearch.query.fusion import HybridConfig, fuse
from tbhns_opensearch.training.batches import NegativeTable
from tbhns_opensearch.training.config import load_train_config
from tbhns_opensearch.training.examples import TrainingPair
from tbhns_opensearch.training.experimental.config import DistillConfig, ExperimentalConfig
from tbhns_opensearch.training.experimental.distill_loss import DistilledLoss
from tbhns_opensearch.training.experimental.teacher import POSITIVE_SCORE, HybridTeacher, hybrid_teacher
from tbhns_opensearch.training.losses import LOSSES, build_loss
from tbhns_opensearch.training.mining import SamplerContext
from tbhns_opensearch.training.negatives import FalseNegativeFilter, get_sampler
from tbhns_opensearch.training.trainer import load_model
from tests.unit.training.test_trainer import _config

PRODUCTS = [
    Product(f"p{i}", title)
    for i, title in enumerate(
        ["Red kite", "Blue kite", "Kite string 50 m", "Stunt kite", "Jigsaw 500", "Board game", "Kite bag"]
    )
]
PAIR = TrainingPair("kite", "p0", frozenset({"p0"}), "real")
BM25 = {"kite": [("p0", 6.0), ("p1", 5.0), ("p2", 4.0), ("p6", 1.0)]}
DENSE = {"kite": [("p3", 0.9), ("p0", 0.8), ("p1", 0.7), ("p4", 0.2)]}


def test_the_teacher_scores_the_hybrid_ranking_with_the_positive_on_top_and_never_draws_it() -> None:
    hybrid = HybridConfig(depth=5)
    teacher = HybridTeacher.fused(BM25, DENSE, hybrid, count=3)
    fused = dict(fuse([BM25["kite"], DENSE["kite"]], hybrid))
    assert [pid for pid, _ in teacher.ranked["kite"]] == ["p0", "p1", "p3", "p2", "p6"]  # the hybrid's first 5; p4 cut
    for epoch in range(10):
        candidates, labels = teacher.draw(PAIR, seed=0, epoch=epoch)
        assert len(candidates) == 3 and "p0" not in candidates and len(set(candidates)) == 3
        assert labels == (POSITIVE_SCORE, *(fused[pid] for pid in candidates))
        assert list(labels[1:]) == sorted(labels[1:], reverse=True)  # candidates keep the hybrid's order
        assert teacher.draw(PAIR, seed=0, epoch=epoch) == (candidates, labels)  # seeded
    draws = {teacher.draw(PAIR, seed=0, epoch=epoch)[0] for epoch in range(10)}
    assert len(draws) > 1  # epochs draw different candidates from the 4 the hybrid ranks first besides p0


def test_a_teacher_with_too_few_ranked_products_names_the_fix() -> None:
    teacher = HybridTeacher.fused(BM25, DENSE, HybridConfig(depth=4), count=6)
    with pytest.raises(
        TrainingError,
        match=r"ranks 3 products besides the positive for 'kite', fewer than "
        r"\[distill\] candidates = 6; raise depth or lower candidates",
    ):
        teacher.draw(PAIR, seed=0, epoch=0)
    with pytest.raises(TrainingError, match="no ranking for 'kites'"):
        teacher.draw(TrainingPair("kites", "p0", frozenset({"p0"}), "real"), seed=0, epoch=0)


def test_rows_with_a_teacher_carry_candidate_columns_after_the_negatives_and_a_label() -> None:
    teacher = HybridTeacher.fused(BM25, DENSE, HybridConfig(depth=4), count=2)
    table = NegativeTable(
        [PAIR],
        PRODUCTS,
        get_sampler("random"),
        FalseNegativeFilter.from_products(PRODUCTS),
        count=1,
        seed=0,
        teacher=teacher,
    )
    table.refresh(epoch=0)
    row = table.dataset()[0]
    assert list(row) == ["anchor", "positive", "negative_1", "candidate_1", "candidate_2", "label"]
    candidates, labels = teacher.draw(PAIR, seed=0, epoch=0)
    assert [row["candidate_1"], row["candidate_2"]] == [PRODUCTS[int(pid[1:])].title for pid in candidates]
    assert row["label"] == pytest.approx(list(labels))
    assert table.row_texts(0)[3:] == (row["candidate_1"], row["candidate_2"])  # batching sees candidates too


def test_distill_config_is_read_from_its_table_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text(
        '[data]\ndataset = "icecat"\n[loss]\nname = "mnrl"\n[experimental.distill]\ncandidates = 6\nweight = 0.5\n'
    )
    assert load_train_config(path).experimental.distill == DistillConfig(candidates=6, weight=0.5)
    path.write_text(
        '[data]\ndataset = "icecat"\n[sampler]\nleaf = 1\nsibling = 0\n[loss]\nname = "margin"\n'
        "[experimental.distill]\n"
    )
    with pytest.raises(ConfigError, match=r'\[distill\] adds to loss "mnrl", not \'margin\''):
        load_train_config(path)
    with pytest.raises(ConfigError, match=r"\[distill\] bm25_weight=1.5: use a weight in \[0, 1\]"):
        DistillConfig(bm25_weight=1.5)


def test_the_distilled_loss_is_the_contrastive_loss_plus_the_scaled_kl_to_the_teacher(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        experimental=ExperimentalConfig(distill=DistillConfig(candidates=2, weight=0.5, teacher_temperature=0.1)),
    )
    model = load_model(config)
    loss = build_loss(model, config)
    assert isinstance(loss, DistilledLoss)
    texts = [
        ["kite", "jigsaw"],
        ["Red kite", "Jigsaw 500"],
        ["Board game", "Kite bag"],
        ["Blue kite", "Red kite"],
        ["Stunt kite", "Puzzle mat"],
        ["Kite bag", "Board game"],
    ]  # query, positive, 2 negatives, 2 candidates
    labels = torch.tensor([[1.0, 0.9, 0.1], [1.0, 0.2, 0.3]])
    features = [model.preprocess(column) for column in texts]
    model.eval()
    with torch.no_grad():
        got = float(loss(features, labels))
        contrastive = float(LOSSES["mnrl"](model, config)(features[:4], None))
        vectors = [model(dict(f))["sentence_embedding"] for f in features]
    cosines = torch.stack([torch.nn.functional.cosine_similarity(vectors[0], vectors[i]) for i in (1, 4, 5)], dim=1)
    student = torch.log_softmax(20 * cosines, dim=1)
    teacher = torch.softmax(labels / 0.1, dim=1)
    kl = float((teacher * (teacher.log() - student)).sum(dim=1).mean())
    assert got == pytest.approx(contrastive + 0.5 * kl, rel=1e-4)
    assert kl > 0.01  # the teacher's order (p, c1, c2 for row 0) differs from the base model's


def test_a_teacher_without_opensearch_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENSEARCH_URL", raising=False)
    config = _config(tmp_path, experimental=ExperimentalConfig(distill=DistillConfig()))
    context = SamplerContext(config, None, None, None, None, OpenSearchConfig())  # type: ignore[arg-type]
    with pytest.raises(TrainingError, match="BM25 mining needs OpenSearch: set OPENSEARCH_URL or start a node"):
        hybrid_teacher(context, config.experimental.distill)  # type: ignore[arg-type]
