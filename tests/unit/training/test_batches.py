"""Training rows and their negatives, exact retrieval, mined hits, and the validation monitor (no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import TrainerControl, TrainerState

from tbhns_opensearch.catalog import Product
from tbhns_opensearch.errors import TrainingError
from tbhns_opensearch.eval.metrics import Evaluation, MetricConfig
from tbhns_opensearch.taxonomy import Taxonomy
from tbhns_opensearch.training.batches import NegativeTable
from tbhns_opensearch.training.examples import TrainingPair
from tbhns_opensearch.training.mining import MinedHits, training_alias
from tbhns_opensearch.training.monitor import NegativeRefresh, TrainingMonitor
from tbhns_opensearch.training.negatives import FalseNegativeFilter, get_sampler
from tbhns_opensearch.training.retrieval import ExactIndex

PRODUCTS = [
    Product("j1", "Sunset jigsaw", taxonomy_path=("Toys", "Puzzles", "Jigsaws")),
    Product("j2", "Forest jigsaw", taxonomy_path=("Toys", "Puzzles", "Jigsaws")),
    Product("j3", "Castle jigsaw", taxonomy_path=("Toys", "Puzzles", "Jigsaws")),
    Product("b1", "Rubik cube", taxonomy_path=("Toys", "Puzzles", "Brain Teasers")),
    Product("k1", "Red kite", taxonomy_path=("Sports", "Kites")),
    Product("dup", "sunset JIGSAW!", taxonomy_path=("Toys", "Puzzles", "Jigsaws")),
]
FILTER = FalseNegativeFilter.from_products(PRODUCTS)
PAIRS = [
    TrainingPair("sunset jigsaw", "j1", frozenset({"j1", "j2"}), "generated"),
    TrainingPair("red kite", "k1", frozenset({"k1"}), "generated"),
]


def _table(sampler_name: str, count: int, **kwargs: object) -> NegativeTable:
    return NegativeTable(PAIRS, PRODUCTS, get_sampler(sampler_name, **kwargs), FILTER, count=count, seed=0)


def test_rows_have_anchor_positive_and_fixed_negative_columns() -> None:
    taxonomy = Taxonomy.from_products(PRODUCTS)
    table = _table("taxonomy", 2, taxonomy=taxonomy, false_negatives=FILTER, leaf=1, sibling=1, cousin=0)
    table.refresh(epoch=0)
    rows = table.dataset()[:]
    assert list(rows) == ["anchor", "positive", "negative_1", "negative_2"]
    assert rows["anchor"] == ["sunset jigsaw", "red kite"]
    assert rows["positive"][0] == PRODUCTS[0].text_for_embedding()
    # j1: leaf j3 (j2 relevant, dup a near-duplicate), sibling b1; k1 has no hard negative: both filled
    assert table.negatives[0] == ("j3", "b1")
    assert table.fills == 2 and len(set(table.negatives[1])) == 2 and "k1" not in table.negatives[1]


def test_fills_never_return_false_negatives() -> None:
    table = _table("random", 3)
    for epoch in range(20):
        table.refresh(epoch=epoch)
        assert not {"j1", "j2", "dup"} & set(table.negatives[0])


def test_refresh_is_deterministic_per_epoch() -> None:
    a, b = _table("random", 2), _table("random", 2)
    a.refresh(epoch=3)
    b.refresh(epoch=3)
    assert a.negatives == b.negatives
    draws = set()
    for epoch in range(10):
        a.refresh(epoch=epoch)
        draws.add(a.negatives[1])
    assert len(draws) > 1  # negatives rotate with the epoch


def test_in_batch_only_rows_have_no_negative_columns() -> None:
    table = _table("random", 0)
    table.refresh(epoch=0)
    assert list(table.dataset()[:]) == ["anchor", "positive"]


def test_too_small_catalog_is_an_error() -> None:
    table = NegativeTable(PAIRS[:1], PRODUCTS[:3], get_sampler("random"), FILTER, count=2, seed=0)
    with pytest.raises(TrainingError, match="cannot find 2 negatives"):
        table.refresh(epoch=0)


def test_exact_index_ranks_by_cosine_then_id() -> None:
    vectors = np.array([[1, 0], [0.6, 0.8], [0.6, 0.8], [0, 1]], dtype=np.float32)
    index = ExactIndex(("a", "c", "b", "d"), vectors)
    query = np.array([[0.8, 0.6]], dtype=np.float32)
    # cosines: a 0.8, c 0.96, b 0.96, d 0.6; ties broken by row order
    assert index.search(query, k=3) == [["c", "b", "a"]]
    assert [round(s, 2) for _, s in index.search_scored(query, k=9)[0]] == [0.96, 0.96, 0.8, 0.6]


def test_mined_hits_refuse_unmined_queries() -> None:
    hits = MinedHits()
    hits.update({"kite": ["k1", "j1"]})
    assert hits("kite", 1) == ["k1"]
    with pytest.raises(TrainingError, match="no mined hits for query 'yo-yo'"):
        hits("yo-yo", 3)


def test_training_alias_is_a_valid_stable_index_name() -> None:
    alias = training_alias("Amazon UK toys", PRODUCTS)
    assert alias == training_alias("Amazon UK toys", list(reversed(PRODUCTS)))
    assert alias.startswith("train-amazon-uk-toys-") and alias == alias.lower()


def _evaluation(recall: float) -> Evaluation:
    return Evaluation(config=MetricConfig(), per_query={}, mean={"recall@24": recall, "ndcg@10": recall / 2})


def _run_monitor(
    tmp_path: Path, recalls: list[float], patience: int, max_steps: int = 10
) -> tuple[TrainingMonitor, list[int]]:
    scores = iter(recalls)
    model = torch.nn.Linear(2, 2)
    monitor = TrainingMonitor(
        lambda m: _evaluation(next(scores)),
        tmp_path / "log.jsonl",
        eval_every=2,
        patience=patience,
        select_metric="recall@24",
    )
    state, control = TrainerState(max_steps=max_steps), TrainerControl()
    monitor.on_train_begin(None, state, control, model=model)  # type: ignore[arg-type]
    steps = []
    for step in range(1, max_steps + 1):
        state.global_step = step
        with torch.no_grad():
            model.weight.fill_(step)
        monitor.on_step_end(None, state, control, model=model)  # type: ignore[arg-type]
        monitor.on_log(None, state, control, logs={"loss": 1.0 / step, "learning_rate": 1e-5})  # type: ignore[arg-type]
        steps.append(step)
        if control.should_training_stop:
            break
    return monitor, steps


def test_monitor_keeps_the_best_weights_and_stops_early(tmp_path: Path) -> None:
    monitor, steps = _run_monitor(tmp_path, [0.5, 0.6, 0.7, 0.7, 0.65], patience=2)
    assert steps == [1, 2, 3, 4, 5, 6, 7, 8]  # validations at 0, 2, 4, 6, 8; no gain after step 4 twice
    assert monitor.stopped_early and monitor.steps_to_best == 4
    assert torch.all(monitor.best_state["weight"] == 4)
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [0, 1, 2, 3, 4, 5, 6, 7, 8]
    assert [line["step"] for line in lines if "validation" in line] == [0, 2, 4, 6, 8]
    assert lines[2]["validation"]["recall@24"] == 0.6 and lines[1]["loss"] == 1.0


def test_monitor_without_patience_runs_to_the_end_and_validates_the_last_step(tmp_path: Path) -> None:
    monitor, steps = _run_monitor(tmp_path, [0.5, 0.4, 0.3, 0.2, 0.1, 0.0], patience=0, max_steps=9)
    assert steps[-1] == 9 and not monitor.stopped_early
    assert [p.step for p in monitor.history] == [0, 2, 4, 6, 8, 9]
    assert monitor.steps_to_best == 0  # the base model stays best


def test_monitor_shows_training_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _run_monitor(tmp_path, [0.5, 0.6, 0.7, 0.7, 0.65, 0.6], patience=0, max_steps=10)
    shown = capsys.readouterr().err
    assert "training" in shown and "10/10" in shown and "best recall@24=0.7000" in shown


def test_refresh_rotates_each_epoch_and_after_remining() -> None:
    table = _table("random", 1)
    table.refresh(epoch=0)
    remined = []
    refresh = NegativeRefresh(table, remine=remined.append, remine_every=3)
    state, control = TrainerState(max_steps=7), TrainerControl()
    refresh.on_epoch_begin(None, state, control)  # type: ignore[arg-type]
    assert refresh.rounds == 0  # the first epoch keeps the negatives drawn before training
    for step in range(1, 8):
        state.global_step = step
        refresh.on_step_end(None, state, control, model="m")  # type: ignore[arg-type]
    refresh.on_epoch_begin(None, state, control)  # type: ignore[arg-type]
    assert refresh.remined_at == [3, 6] and remined == ["m", "m"] and refresh.rounds == 3
