"""The false-negative margin mask on hand-made similarity matrices, and a few real steps with the masked loss."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tbhns_opensearch.errors import ConfigError
from tbhns_opensearch.training.card import model_card
from tbhns_opensearch.training.config import LossConfig
from tbhns_opensearch.training.experimental.config import ExperimentalConfig
from tbhns_opensearch.training.experimental.masked_loss import MaskedMultipleNegativesRankingLoss, false_negative_mask
from tbhns_opensearch.training.trainer import load_model, train
from tests.unit.training.test_trainer import _config, _pair_loss

# Rows: 3 anchors. Columns: the 3 positives (column i is row i's), then 3 explicit negatives.
GUIDE = torch.tensor(
    [
        [0.80, 0.78, 0.10, 0.85, 0.60, 0.74],
        [0.20, 0.50, 0.46, 0.10, 0.49, 0.30],
        [0.30, 0.10, -0.40, 0.20, -0.47, -0.35],
    ]
)


def test_absolute_margin_masks_exactly_the_negatives_within_it():
    # row 0: positive 0.80 -> masks > 0.75: 0.78 and 0.85 (not 0.74); row 1: > 0.45: 0.46, 0.49;
    # row 2: positive -0.40 -> masks > -0.45: every other candidate (0.30, 0.10, 0.20, -0.35), not -0.47.
    assert false_negative_mask(GUIDE, 0.05).tolist() == [
        [False, True, False, True, False, False],
        [False, False, True, False, True, False],
        [True, True, False, True, False, True],
    ]


def test_relative_margin_scales_with_the_positive_and_never_masks_the_positive():
    # row 0: 0.80 - 0.1 * 0.80 = 0.72 -> 0.78, 0.85, 0.74; row 1: 0.45 -> 0.46, 0.49; row 2: -0.44 -> not -0.47.
    assert false_negative_mask(GUIDE, 0.1, "relative").tolist() == [
        [False, True, False, True, False, True],
        [False, False, True, False, True, False],
        [True, True, False, True, False, True],
    ]
    assert not false_negative_mask(GUIDE, 10.0).diagonal().any()
    with pytest.raises(ConfigError, match="mask strategy 'percent' is unknown; use one of absolute, relative"):
        false_negative_mask(GUIDE, 0.1, "percent")


def test_loss_equals_mnrl_over_the_unmasked_candidates(tmp_path: Path):
    config = _config(
        tmp_path,
        loss=LossConfig(name="masked_mnrl"),
        experimental=ExperimentalConfig(mask_guide="self", mask_margin=0.0),
    )
    model = load_model(config)
    loss = MaskedMultipleNegativesRankingLoss(model, guide="self", margin=0.0)
    features = [
        model.preprocess(["red kite", "jigsaw"]),
        model.preprocess(["Red kite | Kites", "Puzzle 500"]),
        model.preprocess(["Blue kite | Kites", "Board game"]),
    ]
    model.eval()
    with torch.no_grad():
        got = float(loss(features))
        vectors = [torch.nn.functional.normalize(model(dict(f))["sentence_embedding"], dim=-1) for f in features]
    scores = vectors[0] @ torch.cat(vectors[1:]).T  # (2, 4)
    mask = false_negative_mask(scores, 0.0)
    expected = torch.nn.functional.cross_entropy((20 * scores).masked_fill(mask, float("-inf")), torch.arange(2))
    assert got == pytest.approx(float(expected), rel=1e-5)
    assert loss.pop_counts() == {"masked_negatives": int(mask.sum()), "negatives": 6}
    assert loss.pop_counts() == {"masked_negatives": 0, "negatives": 0}


def test_a_few_masked_steps_lower_the_loss_and_the_card_counts_the_masked(tmp_path: Path):
    config = _config(
        tmp_path,
        loss=LossConfig(name="masked_mnrl"),
        experimental=ExperimentalConfig(mask_guide="base", mask_margin=0.1),
    )
    result = train(config)
    assert _pair_loss(result.model, config) < _pair_loss(load_model(config), config)
    lines = [json.loads(line) for line in result.log_path.read_text().splitlines()]
    assert all("masked_negatives" in line and line["negatives"] > 0 for line in lines[1:])
    assert result.loss_counts["negatives"] == sum(line["negatives"] for line in lines[1:])
    card = model_card(result)
    assert card.training["loss_counts"] == result.loss_counts
    assert "false-negative mask (base guide, absolute margin 0.1)" in card.to_markdown()
