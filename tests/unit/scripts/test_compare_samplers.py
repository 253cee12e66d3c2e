"""training/compare_samplers.py without training: how each system changes the config, and rows read back from a
saved model card (what `--reuse` scores when the earlier run's JSON has no row)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pytest

from tbhns_opensearch.training.config import DataConfig, TrainConfig
from tests.helpers import load_script


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_script("training/compare_samplers.py")


BASE = TrainConfig(
    data=DataConfig(catalog="c.jsonl", min_grade=2, relevance_threshold=2),
    max_steps=300,
    batch_size=64,
    learning_rate=5e-5,
    eval_every=150,
)


def test_partial_system_lowers_min_grade_and_keeps_the_rest(script: ModuleType) -> None:
    config = script.system_config(BASE, "taxonomy-partial", "out/p")
    assert config.data.min_grade == 1
    assert config.data.relevance_threshold == 2  # evaluation is unchanged
    assert (config.max_steps, config.batch_size, config.output_dir) == (300, 64, "out/p")


def test_batch_system_keeps_one_pass_over_the_pairs(script: ModuleType) -> None:
    config = script.system_config(BASE, "taxonomy-batch256", "out/b")
    assert config.max_steps * config.batch_size == BASE.max_steps * BASE.batch_size
    assert config.learning_rate == 1e-4
    assert config.data == BASE.data


def test_seed_systems_change_the_training_seed_not_the_data(script: ModuleType) -> None:
    seeded, recipe = (
        script.system_config(BASE, name, "out/s")
        for name in ("taxonomy-batch256-bf16-seed14", "taxonomy-batch256-bf16")
    )
    assert (seeded.seed, recipe.seed) == (14, BASE.seed)
    assert replace(seeded, seed=BASE.seed) == recipe
    assert not script._own_data("taxonomy-batch256-bf16-seed14")  # so it trains on the run's shared splits
    assert script.system_config(BASE, "random-batch256-bf16-seed14", "out/s").sampler.name == "random"


def test_roar_system_adds_a_second_stage_of_half_the_steps(script: ModuleType) -> None:
    config = script.system_config(BASE, "taxonomy-masked-roar", "out/r")
    assert config.max_steps == 300 and config.loss.name == "masked_mnrl"
    assert config.experimental.stage2 is not None and config.experimental.stage2.max_steps == 150


def test_recipe_roar_system_takes_its_own_stage2_fields(script: ModuleType) -> None:
    config = script.system_config(BASE, "taxonomy-batch256-roar", "out/r")
    assert (config.max_steps, config.batch_size, config.loss.name) == (75, 256, "mnrl")
    stage2 = config.experimental.stage2
    assert stage2 is not None
    assert (stage2.max_steps, stage2.batch_size, stage2.learning_rate) == (117, 64, 5e-5)


def _card(directory: Path, pairs: int) -> Path:
    directory.mkdir(parents=True)
    card = {
        "data": {"counts": {"train_pairs_real": pairs, "train_pairs_generated": 5}},
        "validation": {"recall@24": 0.58, "ndcg@10": 0.36, "mrr@100": 0.4},
        "training": {"best_step": 75, "steps": 75, "wall_s": 1200.0, "eval_s": 100.5},
        "sampler": {"level_counts": {"leaf": 10, "sibling": 3}},
    }
    (directory / "model_card.json").write_text(json.dumps(card))
    return directory


def test_saved_row_reads_the_model_card(script: ModuleType, tmp_path: Path) -> None:
    row = script.saved_row(_card(tmp_path / "hd-taxonomy", 100), "taxonomy")
    assert row == {
        "validation": {"recall@24": 0.58, "ndcg@10": 0.36},
        "best_step": 75,
        "steps": 75,
        "train_s": 1099.5,
        "levels": {"leaf": 10, "sibling": 3},
    }


def test_saved_row_keeps_a_reused_two_stage_model_s_roar_stage(script: ModuleType, tmp_path: Path) -> None:
    directory = _card(tmp_path / "hd-roar", 100)
    card = json.loads((directory / "model_card.json").read_text())
    card["training"]["stage2"] = {
        "steps": 117,
        "best_step": 0,
        "rows": 6512,
        "wall_s": 1500.0,
        "eval_s": 580.0,
        "step_log": "train_log_stage2.jsonl",
    }
    (directory / "model_card.json").write_text(json.dumps(card))
    lines = [
        {"step": 0, "validation": {"recall@24": 0.58, "ndcg@10": 0.365}},
        {"step": 1, "loss": 0.6},
        {"step": 39, "validation": {"recall@24": 0.56, "ndcg@10": 0.357}},
    ]
    (directory / "train_log_stage2.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    row = script.saved_row(directory, "taxonomy-batch256-roar")
    assert row["stage2"] == {
        "steps": 117,
        "best_step": 0,
        "rows": 6512,
        "train_s": 920.0,
        "history": [
            {"step": 0, "recall@24": 0.58, "ndcg@10": 0.365},
            {"step": 39, "recall@24": 0.56, "ndcg@10": 0.357},
        ],
    }
    assert row["train_s"] == 1099.5 + 920.0  # both stages, as a freshly trained row counts them


def test_saved_row_counts_own_pairs_for_systems_with_their_own_data(script: ModuleType, tmp_path: Path) -> None:
    assert script.saved_row(_card(tmp_path / "hd-partial", 100), "taxonomy-partial")["train_pairs"] == 105


def test_reusing_an_untrained_system_names_the_fix(script: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"--reuse taxonomy: no saved model .* \(--samplers taxonomy\)"):
        script.saved_row(tmp_path / "missing", "taxonomy")


def test_report_names_what_each_system_overrides(script: ModuleType) -> None:
    assert script._overrides({"base": {}, "taxonomy": {}}) == []
    (line,) = script._overrides({"taxonomy": {}, "taxonomy-batch256": {}, "taxonomy-masked": {}})
    assert "taxonomy-batch256 (batch_size 256, steps 0.25, learning_rate 0.0001)" in line
    assert "taxonomy-masked" not in line  # the mask is a loss, named by the system itself


def test_report_names_mask_settings_that_differ_from_the_default(script: ModuleType) -> None:
    (line,) = script._overrides({"taxonomy-masked": {}, "taxonomy-masked-self": {}, "taxonomy-batch256-masked0": {}})
    assert "taxonomy-masked-self (mask_guide self)" in line
    assert "mask_margin 0.0)" in line and "mask_margin 0.05" not in line
    assert "loss" not in line and "taxonomy-masked (" not in line


def test_seed_pool_scores_each_query_by_its_seed_runs_mean_and_joins_the_family(script: ModuleType) -> None:
    from tbhns_opensearch.eval.metrics import Evaluation, MetricConfig

    def run(scores: dict[str, float]) -> Evaluation:
        per_query = {m: dict(scores) for m in script.METRICS}
        return Evaluation(MetricConfig(), per_query, {m: sum(scores.values()) / len(scores) for m in script.METRICS})

    tests = {
        "taxonomy-batch256-bf16": run({"a": 0.5, "b": 1.0, "c": 0.0}),
        "taxonomy-batch256-bf16-seed14": run({"a": 1.0, "b": 1.0, "c": 0.5}),
        "random-batch256-bf16": run({"a": 0.0, "b": 1.0, "c": 0.0}),
        "random-batch256-bf16-seed14": run({"a": 0.5, "b": 0.5, "c": 0.0}),
    }
    pools = script.pooled(tests)
    assert pools["taxonomy-batch256-bf16 seeds 13+14"].per_query["ndcg@10"] == {"a": 0.75, "b": 1.0, "c": 0.25}
    assert pools["random-batch256-bf16 seeds 13+14"].mean["ndcg@10"] == pytest.approx(2 / 6)
    pooled_tests = [t for t in script._significance(tests | pools) if "seeds 13+14" in t.system]
    assert [(t.system, t.baseline) for t in pooled_tests] == [
        ("taxonomy-batch256-bf16 seeds 13+14", "random-batch256-bf16 seeds 13+14")
    ] * 2
    assert pooled_tests[0].mean_diff == pytest.approx(2 / 3 - 1 / 3)
    del tests["random-batch256-bf16-seed14"]
    assert list(script.pooled(tests)) == ["taxonomy-batch256-bf16 seeds 13+14"]  # a pool needs all its seed runs


def test_then_distill_system_starts_from_the_recipe_model_with_a_hybrid_teacher(script: ModuleType) -> None:
    config = script.system_config(BASE, "taxonomy-batch256-then-distill", "out/d")
    assert config.base_model == str(script.MODELS / "homedepot-taxonomy-batch256-bf16")
    assert (config.max_steps, config.batch_size, config.learning_rate, config.negatives_per_pair) == (25, 256, 5e-5, 0)
    distill = config.experimental.distill
    assert distill is not None and distill.candidates == 4 and not distill.encoder
