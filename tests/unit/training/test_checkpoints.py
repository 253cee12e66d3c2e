"""Checkpoints without training: what a checkpoint holds of the monitor, the negatives and the sampler, how a resumed
run picks up from it, pruning, and the one-line refusals of a bad `--resume` (the killed-and-resumed run itself is
tests/integration/training/test_train_resume.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from transformers import TrainerControl, TrainerState

from tbhns_opensearch.errors import ConfigError
from tbhns_opensearch.eval.metrics import Evaluation, MetricConfig
from tbhns_opensearch.taxonomy import Taxonomy
from tbhns_opensearch.training.batches import NegativeTable
from tbhns_opensearch.training.checkpoints import (
    STATE_FILE,
    Checkpoints,
    checkpoints_dir,
    clear_checkpoints,
    data_digest,
    find_checkpoint,
    fingerprint,
    run_identity,
)
from tbhns_opensearch.training.config import DataConfig, TrainConfig
from tbhns_opensearch.training.data import EvalSet, TrainingData
from tbhns_opensearch.training.mining import MinedHits
from tbhns_opensearch.training.monitor import NegativeRefresh, TrainingMonitor
from tbhns_opensearch.training.negatives import get_sampler
from tests.unit.training.test_batches import FILTER, PAIRS, PRODUCTS

NO_QUERIES = EvalSet({}, {}, {})
DATA = TrainingData("toys", tuple(PRODUCTS), tuple(PAIRS), NO_QUERIES, NO_QUERIES, {})


def _config(tmp_path: Path, **overrides: object) -> TrainConfig:
    config = TrainConfig(data=DataConfig(catalog="toys.jsonl"), output_dir=str(tmp_path / "run"), checkpoint_every=2)
    return replace(config, **overrides)  # type: ignore[arg-type]


def _taxonomy_table() -> NegativeTable:
    sampler = get_sampler("taxonomy", taxonomy=Taxonomy.from_products(PRODUCTS), false_negatives=FILTER)
    return NegativeTable(PAIRS, PRODUCTS, sampler, FILTER, count=2, seed=7)  # the kite's leaf is short: fills


def _save(checkpoint: Path, config: TrainConfig, step: int = 2, data: TrainingData = DATA) -> Path:
    """A checkpoint folder as `Checkpoints.on_save` leaves it, without the trainer's files."""
    checkpoint.mkdir(parents=True)
    identity = run_identity(config)
    state = {"step": step, "fingerprint": fingerprint(identity), "config": identity, "data": data_digest(data)}
    (checkpoint / STATE_FILE).write_text(json.dumps({**state, "parts": {}}))
    return checkpoint


def test_the_table_and_its_sampler_log_come_back_as_they_were_saved() -> None:
    table = _taxonomy_table()
    table.refresh(epoch=0)
    table.refresh(epoch=1)
    saved = json.loads(json.dumps(table.state_dict()))  # what the state file holds
    resumed = _taxonomy_table()
    resumed.refresh(epoch=0)  # a resumed run draws round 0 before it reads the checkpoint
    resumed.load_state_dict(saved)
    assert resumed.negatives == table.negatives and resumed.fills == table.fills
    log, again = table.sampler.log, resumed.sampler.log
    assert (again.counts, again.short, again.records) == (log.counts, log.short, log.records)  # the card's levels
    resumed.refresh(epoch=2)
    table.refresh(epoch=2)
    assert resumed.negatives == table.negatives and resumed.sampler.log.counts == table.sampler.log.counts


def test_mined_hits_come_back_as_they_were_saved() -> None:
    hits = MinedHits()
    hits.update({"kite": ["k1", "j1"]})
    again = MinedHits()
    again.load_state_dict(json.loads(json.dumps(hits.state_dict())))
    assert again("kite", 2) == ["k1", "j1"]


class _Rounds:
    """A table that records the rounds it is refreshed with."""

    def __init__(self) -> None:
        self.rounds: list[int] = []

    def refresh(self, epoch: int) -> None:
        self.rounds.append(epoch)


@pytest.mark.parametrize(
    ("global_step", "refreshed"),
    [(10, []), (14, [2])],  # 7 steps an epoch: step 10 is inside the second epoch, step 14 ends it
)
def test_a_resumed_refresh_redraws_only_when_a_new_epoch_begins(global_step: int, refreshed: list[int]) -> None:
    table = _Rounds()
    refresh = NegativeRefresh(table)  # type: ignore[arg-type]
    refresh.load_state_dict({"rounds": 1, "epochs": 2, "remined_at": []})  # saved in the second epoch
    state, control = TrainerState(global_step=global_step), TrainerControl()
    refresh.on_epoch_begin(None, state, control, train_dataloader=range(7))  # type: ignore[arg-type]
    assert table.rounds == refreshed
    state.global_step = 21
    refresh.on_epoch_begin(None, state, control, train_dataloader=range(7))  # type: ignore[arg-type]
    assert table.rounds == [*refreshed, refresh.rounds] and refresh.rounds == 2 + len(refreshed)


def _evaluation(ndcg: float) -> Evaluation:
    return Evaluation(config=MetricConfig(), per_query={}, mean={"ndcg@10": ndcg})


def _monitor(log_path: Path, scores: list[float]) -> TrainingMonitor:
    values = iter(scores)
    return TrainingMonitor(
        lambda m: _evaluation(next(values)), log_path, eval_every=2, patience=2, select_metric="ndcg@10", progress=False
    )


def _steps(monitor: TrainingMonitor, model: torch.nn.Module, steps: range, max_steps: int = 10) -> None:
    state, control = TrainerState(max_steps=max_steps), TrainerControl()
    for step in steps:
        state.global_step = step
        with torch.no_grad():
            model.weight.fill_(step)
        monitor.on_step_end(None, state, control, model=model)  # type: ignore[arg-type]
        monitor.on_log(None, state, control, logs={"loss": 1.0 / step, "learning_rate": 1e-5})  # type: ignore[arg-type]
        if control.should_training_stop:
            break


def _lines(path: Path) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [{key: value for key, value in line.items() if key not in ("wall_s", "eval_s")} for line in lines]


def test_a_resumed_monitor_goes_on_as_if_never_interrupted(tmp_path: Path) -> None:
    scores = [0.5, 0.6, 0.7, 0.65, 0.66, 0.64]  # steps 0, 2, ..., 10: best at 4, stale twice by 8
    model = torch.nn.Linear(2, 2)
    whole = _monitor(tmp_path / "whole.jsonl", scores)
    whole.on_train_begin(None, TrainerState(max_steps=10), TrainerControl(), model=model)  # type: ignore[arg-type]
    _steps(whole, model, range(1, 11))

    killed = _monitor(tmp_path / "resumed.jsonl", scores)
    killed.on_train_begin(None, TrainerState(max_steps=10), TrainerControl(), model=model)  # type: ignore[arg-type]
    _steps(killed, model, range(1, 5))
    saved = json.loads(json.dumps(killed.state_dict()))  # the checkpoint at step 4
    best = {name: value.clone() for name, value in (killed.best_state or {}).items()}
    _steps(killed, model, range(5, 7))  # the killed run went on past its checkpoint

    resumed = _monitor(tmp_path / "resumed.jsonl", scores[3:])  # validations after step 4 come from here
    resumed.load_state_dict(saved, best)
    resumed.on_train_begin(None, TrainerState(max_steps=10), TrainerControl(), model=model)  # type: ignore[arg-type]
    _steps(resumed, model, range(5, 11))

    assert _lines(tmp_path / "resumed.jsonl") == _lines(tmp_path / "whole.jsonl")
    assert (resumed.best, resumed.history, resumed.stopped_early) == (whole.best, whole.history, whole.stopped_early)
    assert whole.stopped_early and resumed.steps_to_best == 4 and torch.all(resumed.best_state["weight"] == 4)


class _Best:
    """A monitor whose best step is `step`."""

    def __init__(self, step: int) -> None:
        self.best = type("Point", (), {"step": step})()


def test_checkpoints_other_than_the_newest_and_the_best_are_pruned(tmp_path: Path) -> None:
    config = _config(tmp_path)
    directory = checkpoints_dir(config)
    for step in (2, 4, 6, 8):
        (directory / f"checkpoint-{step}").mkdir(parents=True)
    checkpoints = Checkpoints(directory, 2, config, DATA, {}, monitor=_Best(4))  # type: ignore[arg-type]
    checkpoints._prune(directory / "checkpoint-8")
    assert sorted(path.name for path in directory.iterdir()) == ["checkpoint-4", "checkpoint-8"]


def test_pruning_and_a_fresh_start_remove_only_the_trainers_checkpoint_folders(tmp_path: Path) -> None:
    """Whatever else is in the checkpoints folder (a file or folder of the user's named like one) is not the run's."""
    config = _config(tmp_path)
    directory = checkpoints_dir(config)
    for step in (2, 4, 6):
        (directory / f"checkpoint-{step}").mkdir(parents=True)
    (directory / "checkpoint-notes").mkdir()
    (directory / "checkpoint-9.txt").write_text("mine")
    (directory / "checkpoint-10").write_text("a file, not a checkpoint folder")
    Checkpoints(directory, 2, config, DATA, {}, monitor=_Best(2))._prune(directory / "checkpoint-6")  # type: ignore[arg-type]
    assert sorted(path.name for path in directory.iterdir()) == [
        "checkpoint-10",
        "checkpoint-2",
        "checkpoint-6",
        "checkpoint-9.txt",
        "checkpoint-notes",
    ]
    clear_checkpoints(directory)
    assert sorted(path.name for path in directory.iterdir()) == [
        "checkpoint-10",
        "checkpoint-9.txt",
        "checkpoint-notes",
    ]


def test_resume_takes_the_newest_complete_checkpoint(tmp_path: Path) -> None:
    config = _config(tmp_path)
    directory = checkpoints_dir(config)
    _save(directory / "checkpoint-2", config)
    older = _save(directory / "checkpoint-4", replace(config, device="cuda", checkpoint_every=4))  # free to change
    (directory / "checkpoint-6").mkdir()  # killed while saving: no state file yet
    assert find_checkpoint(config) == older


def test_resume_without_a_checkpoint_is_one_line_naming_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        find_checkpoint(_config(tmp_path))
    message = str(refused.value)
    assert message == (
        f"--resume: no complete checkpoint in {tmp_path / 'run' / 'checkpoints'}; give the --output of the run that "
        "saved them (a run saves them with checkpoint_every > 0), or leave out --resume to start at step 0"
    )


def test_a_checkpoint_of_another_config_is_refused_naming_what_differs(tmp_path: Path) -> None:
    config = _config(tmp_path)
    _save(checkpoints_dir(config) / "checkpoint-2", replace(config, max_steps=300, learning_rate=1e-4))
    with pytest.raises(ConfigError, match=r"was saved by another config \(it differs in learning_rate, max_steps\); "):
        find_checkpoint(config)


def test_a_checkpoint_of_other_data_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path)
    other = replace(DATA, train_pairs=DATA.train_pairs[:1])
    checkpoint = _save(checkpoints_dir(config) / "checkpoint-2", config, data=other)
    checkpoints = Checkpoints(checkpoints_dir(config), 2, config, DATA, {}, resume_from=checkpoint)
    with pytest.raises(ConfigError, match="the training data changed since .* was saved"):
        checkpoints.restore()


def test_checkpoint_every_must_not_be_negative(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\{'checkpoint_every': -1\} must be >= 0"):
        _config(tmp_path, checkpoint_every=-1)


def test_train_resume_without_a_checkpoint_exits_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tbhns_opensearch.cli.app import main

    config_file = tmp_path / "tiny.toml"
    config_file.write_text('checkpoint_every = 2\n[data]\ncatalog = "toys.jsonl"\n')
    output = tmp_path / "model"
    monkeypatch.setattr("sys.argv", ["tbhns", "train", str(config_file), "--output", str(output), "--resume"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: --resume: no complete checkpoint in {output / 'checkpoints'}; ")
