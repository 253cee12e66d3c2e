"""A few real training steps on a tiny fixture: the loss goes down (in float32 and in bfloat16 autocast), the
step log and summary are complete."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tbhns_opensearch.encoder import native_bf16
from tbhns_opensearch.errors import ConfigError
from tbhns_opensearch.training.config import DataConfig, SamplerConfig, TrainConfig
from tbhns_opensearch.training.data import prepare_data
from tbhns_opensearch.training.experimental.config import ExperimentalConfig
from tbhns_opensearch.training.losses import DIRECTIONS, LOSSES
from tbhns_opensearch.training.trainer import TrainResult, load_model, train
from tests.helpers import FIXTURES

DATA = DataConfig(
    catalog=str(FIXTURES / "toys_products.jsonl"),
    queries="generated",
    catalog_limit=150,
    relevance_threshold=2,
    max_eval_relevant=5,
    max_positives_per_query=1,
)


def _config(tmp_path: Path, **overrides: object) -> TrainConfig:
    values = dict(
        data=DATA,
        sampler=SamplerConfig(name="taxonomy", leaf=1, sibling=1),
        max_steps=5,
        batch_size=8,
        max_seq_length=32,
        eval_every=5,
        learning_rate=1e-4,
        warmup_ratio=0.0,
        restore_best=False,
        output_dir=str(tmp_path),
    )
    return TrainConfig(**{**values, **overrides})  # type: ignore[arg-type]


def _pair_loss(model, config: TrainConfig) -> float:  # type: ignore[no-untyped-def]
    """MNRL (in-batch negatives) on the first 16 training pairs: a fixed batch to compare models on."""
    pairs = prepare_data(config.data, config.seed).train_pairs[:16]
    texts = {p.id: p.text_for_embedding() for p in prepare_data(config.data, config.seed).products}
    features = [model.preprocess([p.query for p in pairs]), model.preprocess([texts[p.positive_id] for p in pairs])]
    model.eval()
    with torch.no_grad():
        return float(LOSSES["mnrl"](model, config)(features, None))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainConfig, TrainResult]:
    config = _config(tmp_path_factory.mktemp("train"))
    return config, train(config)


def test_a_few_steps_lower_the_training_loss(trained) -> None:  # type: ignore[no-untyped-def]
    config, result = trained
    before = _pair_loss(load_model(config), config)
    after = _pair_loss(result.model, config)
    assert after < before


def test_directions_and_hardness_reach_the_loss(trained) -> None:  # type: ignore[no-untyped-def]
    config, result = trained
    gte = replace(
        config, loss=replace(config.loss, directions=DIRECTIONS)
    )  # GTE's loss: every softmax also holds other queries / products
    assert _pair_loss(result.model, gte) > _pair_loss(result.model, config) > 0
    hard = replace(  # closer negatives weigh more
        config, loss=replace(config.loss, hardness_mode="in_batch_negatives", hardness_strength=5.0)
    )
    assert _pair_loss(result.model, hard) > _pair_loss(result.model, config)


def test_step_log_has_loss_time_and_validation(trained) -> None:  # type: ignore[no-untyped-def]
    config, result = trained
    lines = [json.loads(line) for line in result.log_path.read_text().splitlines()]
    assert [line["step"] for line in lines] == [0, 1, 2, 3, 4, 5]
    assert all(line["loss"] > 0 and line["wall_s"] >= 0 for line in lines[1:])
    assert set(lines[0]["validation"]) >= {"recall@24", "ndcg@10"} and "validation" in lines[5]
    assert [p.step for p in result.history] == [0, 5] and result.steps == 5


def test_summary_records_the_levels_of_the_negatives(trained) -> None:  # type: ignore[no-untyped-def]
    _, result = trained
    summary = result.sampler
    assert summary.name == "taxonomy" and summary.taxonomy == "catalog" and summary.negatives_per_pair == 2
    assert set(summary.level_counts) <= {"leaf", "sibling", "cousin", "fill"} and summary.level_counts["leaf"] > 0
    assert summary.sample and all(len(levels) <= 2 for _, _, levels in summary.sample)


@pytest.mark.skipif(not native_bf16("cpu"), reason="this CPU has neither AMX nor AVX-512 BF16")
def test_bf16_steps_lower_the_loss_and_leave_float32_weights(tmp_path: Path) -> None:
    config = _config(tmp_path, precision="bf16")
    result = train(config)
    assert _pair_loss(result.model, config) < _pair_loss(load_model(config), config)
    assert next(result.model.parameters()).dtype == torch.float32  # what is exported and served is unchanged


def test_bf16_is_refused_before_training_where_it_would_be_emulated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    with pytest.raises(ConfigError, match='precision="bf16" needs a device that multiplies bfloat16 natively'):
        train(_config(tmp_path, precision="bf16"))
    assert not (tmp_path / "train_log.jsonl").exists()


def test_unknown_precision_names_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="precision='fp16' is unknown; use one of fp32, bf16"):
        _config(tmp_path, precision="fp16")


def test_taxonomy_batches_train_and_an_unknown_batching_is_named(tmp_path: Path) -> None:
    config = _config(  # taxonomy from [data]
        tmp_path, experimental=ExperimentalConfig(batching="taxonomy"), sampler=SamplerConfig(name="random")
    )
    result = train(config)
    assert result.steps == 5 and _pair_loss(result.model, config) < _pair_loss(load_model(config), config)
    with pytest.raises(ConfigError, match="batching='topics' is unknown; use one of shuffled, taxonomy"):
        _config(tmp_path, experimental=ExperimentalConfig(batching="topics"))
