"""ROAR against hand computations (2 and 3 grades, unequal groups), its rows, and a real two-stage run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from tbhns_opensearch.catalog.judgments import read_judgments_csv
from tbhns_opensearch.errors import ConfigError
from tbhns_opensearch.eval.queries import LabelledQuery, write_labelled_queries
from tbhns_opensearch.training.card import model_card
from tbhns_opensearch.training.config import DataConfig, SamplerConfig, TrainConfig, load_train_config
from tbhns_opensearch.training.experimental.config import ExperimentalConfig, PreferenceConfig
from tbhns_opensearch.training.experimental.graded import graded_rows, rows_dataset
from tbhns_opensearch.training.experimental.roar import PAD_GRADE, ROARLoss, in_batch_contrast, roar_loss
from tbhns_opensearch.training.trainer import load_model, train
from tests.helpers import FIXTURES


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def lme(*values: float) -> float:
    return math.log(sum(math.exp(v) for v in values) / len(values))


def test_two_grades_with_unequal_groups_match_the_hand_computation():
    scores = torch.tensor([[3.0, 1.0, 2.0, 0.5, 7.0]])
    grades = torch.tensor([[1.0, 0.0, 1.0, 0.0, PAD_GRADE]])  # exact: {3, 2}; irrelevant: {1, 0.5}; 7 is padding
    expected = softplus(0.5 * 1 - (lme(3.0, 2.0) - lme(1.0, 0.5)))
    assert float(roar_loss(scores, grades, margin=0.5)) == pytest.approx(expected, rel=1e-6)


def test_three_grades_average_the_consecutive_pairs_and_rows():
    scores = torch.tensor([[4.0, 1.0, 2.0, 0.0, -1.0], [1.0, 2.0, 0.0, 0.0, 0.0]])
    grades = torch.tensor([[3.0, 1.0, 1.0, 0.0, 0.0], [2.0, 0.0, PAD_GRADE, PAD_GRADE, PAD_GRADE]])
    row0 = (softplus(2 * 2 - (4.0 - lme(1.0, 2.0))) + softplus(2 * 1 - (lme(1.0, 2.0) - lme(0.0, -1.0)))) / 2
    row1 = softplus(2 * 2 - (1.0 - 2.0))
    assert float(roar_loss(scores, grades, margin=2.0)) == pytest.approx((row0 + row1) / 2, rel=1e-6)


def test_stable_for_large_scores_and_rows_of_one_grade_add_nothing():
    scores = torch.tensor([[900.0, 100.0], [5.0, 6.0]], requires_grad=True)
    grades = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    loss = roar_loss(scores, grades, margin=1.0)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(softplus(1.0 - 800.0), abs=1e-12)  # only row 0 counts
    assert torch.isfinite(scores.grad).all() and float(scores.grad[1].abs().sum()) == 0.0


def test_rows_keep_every_grade_add_unjudged_only_without_irrelevant_and_pad():
    judgments = [LabelledQuery("drill", p, g) for p, g in (("a", 2), ("b", 2), ("c", 2), ("d", 1))]
    judgments += [LabelledQuery("hose", "e", 2), LabelledQuery("hose", "f", 0), LabelledQuery("lonely", "a", 2)]
    texts = {pid: pid.upper() for pid in "abcdefgh"}
    rows = {row.query: row for row in graded_rows(judgments, texts, size=4, unjudged=1, seed=3)}
    drill = rows["drill"]
    assert drill.grades[:2] == (2.0, 2.0) and drill.grades[2:] == (1.0, 0.0)  # 1 of 3 exact dropped, unjudged added
    assert drill.texts[3] in {"E", "F", "G", "H"}
    assert rows["hose"].texts == ("E", "F", "", "") and rows["hose"].grades == (2.0, 0.0, PAD_GRADE, PAD_GRADE)
    assert set(rows) == {"drill", "hose", "lonely"}  # lonely gets an unjudged bottom group
    assert "lonely" not in {r.query for r in graded_rows(judgments, texts, size=4, unjudged=0, seed=3)}
    dataset = rows_dataset(list(rows.values()))
    assert dataset.column_names == ["query", "product_0", "product_1", "product_2", "product_3", "label"]


def test_in_batch_contrast_matches_the_hand_computation_without_own_products_or_padding():
    e = torch.eye(3)
    queries = e
    products = torch.stack([torch.stack([e[0], e[1]]), torch.stack([e[1], e[2]]), torch.stack([e[2], e[0]])])
    grades = torch.tensor([[2.0, 0.0], [2.0, 1.0], [1.0, PAD_GRADE]])
    # row 0 (e0): its e0 against row 1's e1, e2 and row 2's e2 (its own e1 and row 2's padded e0 left out)
    row0 = -math.log(math.e / (math.e + 3))
    # row 1 (e1): its e1 against row 0's e0, e1 and row 2's e2
    row1 = -math.log(math.e / (math.e + 1 + math.e + 1))
    # row 2 (e2): its e2 against row 0's e0, e1 and row 1's e1, e2
    row2 = -math.log(math.e / (math.e + 1 + 1 + 1 + math.e))
    expected = (row0 + row1 + row2) / 3
    assert float(in_batch_contrast(queries, products, grades, scale=1.0)) == pytest.approx(expected, rel=1e-6)


def test_the_lowest_group_comes_from_the_callable_without_judged_or_unknown_products():
    judgments = [LabelledQuery("drill", "a", 2), LabelledQuery("drill", "b", 1)]
    texts = {pid: pid.upper() for pid in "abcdefgh"}
    asked = []

    def lowest(query, grades):  # type: ignore[no-untyped-def]
        asked.append((query, dict(grades)))
        return ["a", "zzz", "g", "h"]  # a judged product and one missing from the catalog are skipped

    row = graded_rows(judgments, texts, size=4, unjudged=1, seed=3, lowest=lowest)[0]
    assert asked == [("drill", {"a": 2, "b": 1})]
    assert row.texts == ("A", "B", "G", "") and row.grades == (2.0, 1.0, 0.0, PAD_GRADE)


def test_stage2_table_is_read_and_checked(tmp_path: Path):
    path = tmp_path / "two.toml"
    path.write_text(
        'max_steps = 3\n[data]\ndataset = "icecat"\nqueries = "judgments"\n'
        "[experimental.stage2]\nmax_steps = 7\nmargin = 0.5\n"
    )
    assert load_train_config(path).experimental.stage2 == PreferenceConfig(max_steps=7, margin=0.5)
    with pytest.raises(ConfigError, match=r"\[stage2\]"):
        PreferenceConfig(group_size=1)
    with pytest.raises(ConfigError, match=r"lowest = 'bm25'.*unjudged, taxonomy"):
        PreferenceConfig(lowest="bm25")
    with pytest.raises(ConfigError, match="contrast"):
        PreferenceConfig(contrast=-1.0)


@pytest.fixture(scope="module")
def two_stage(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("two-stage")
    queries = tmp / "queries.jsonl"
    write_labelled_queries(
        queries, (LabelledQuery.from_judgment(j) for j in read_judgments_csv(FIXTURES / "icecat_judgments.csv"))
    )
    data = DataConfig(
        catalog=str(FIXTURES / "icecat_products.jsonl"),
        queries=str(queries),
        catalog_limit=120,
        unseen_products=False,
        validation=0.2,
        test=0.2,
    )
    config = TrainConfig(
        data=data,
        sampler=SamplerConfig(name="random"),
        max_steps=2,
        batch_size=8,
        max_seq_length=32,
        eval_every=2,
        learning_rate=1e-4,
        warmup_ratio=0.0,
        restore_best=False,
        output_dir=str(tmp),
        experimental=ExperimentalConfig(
            stage2=PreferenceConfig(max_steps=4, batch_size=4, group_size=4, eval_every=4, learning_rate=1e-4)
        ),
    )
    return config, train(config)


def test_roar_steps_lower_roar_on_the_training_groups(two_stage):  # type: ignore[no-untyped-def]
    config, result = two_stage
    texts = {p.id: p.text_for_embedding() for p in result.data.products}
    rows = graded_rows(result.data.train_judgments, texts, size=4, unjudged=2, seed=config.seed)[:8]

    def loss_of(model) -> float:  # type: ignore[no-untyped-def]
        features = [model.preprocess([r.query for r in rows])]
        features += [model.preprocess([r.texts[slot] for r in rows]) for slot in range(4)]
        model.eval()
        with torch.no_grad():
            return float(ROARLoss(model)(features, torch.tensor([r.grades for r in rows])))

    assert loss_of(result.model) < loss_of(load_model(config))  # base model


def test_two_stage_run_logs_both_stages_and_the_card_names_them(two_stage):  # type: ignore[no-untyped-def]
    config, result = two_stage
    assert result.steps == 2 and result.stage2 is not None and result.stage2.steps == 4
    assert [p.step for p in result.stage2.history] == [0, 4] and result.stage2.rows > 0
    lines = [json.loads(line) for line in result.stage2.log_path.read_text().splitlines()]
    assert [line["step"] for line in lines] == [0, 1, 2, 3, 4]
    card = model_card(result)
    assert card.training["stage2"]["steps"] == 4
    assert "stage 2, ROAR on graded groups" in card.to_markdown()


def test_roar_with_taxonomy_lowest_group_and_contrast_runs_and_the_card_says_so(tmp_path: Path):
    queries = tmp_path / "queries.jsonl"
    write_labelled_queries(
        queries, (LabelledQuery.from_judgment(j) for j in read_judgments_csv(FIXTURES / "icecat_judgments.csv"))
    )
    data = DataConfig(
        catalog=str(FIXTURES / "icecat_products.jsonl"),
        queries=str(queries),
        catalog_limit=120,
        unseen_products=False,
        validation=0.2,
        test=0.2,
        taxonomy="induced:clustering",
    )
    stage2 = PreferenceConfig(
        max_steps=2, batch_size=4, group_size=4, eval_every=2, learning_rate=1e-4, lowest="taxonomy", contrast=0.5
    )
    config = TrainConfig(
        data=data,
        sampler=SamplerConfig(name="taxonomy", leaf=1, sibling=1, cousin=0),
        max_steps=1,
        batch_size=8,
        max_seq_length=32,
        eval_every=1,
        learning_rate=1e-4,
        warmup_ratio=0.0,
        output_dir=str(tmp_path / "out"),
        experimental=ExperimentalConfig(stage2=stage2),
    )
    result = train(config)
    assert result.stage2 is not None and result.stage2.steps == 2 and result.stage2.rows > 0
    assert sum(result.sampler.level_counts.values()) <= 2 * len(result.data.train_pairs)  # stage 2's draws not counted
    text = model_card(result).to_markdown()
    assert "ROAR + 0.5 x in-batch contrast" in text and "lowest group taxonomy" in text
