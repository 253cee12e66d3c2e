"""Data-parallel training without processes: the batches a distributed run draws and how accelerate splits them
between ranks, the early stop rank 0 shares, the loss's gathering, the card's line and the one-line refusals (the
2-process run itself is tests/integration/training/test_train_distributed.py)."""

from __future__ import annotations

import pytest
import torch
from accelerate.data_loader import BatchSamplerShard
from datasets import Dataset
from sentence_transformers.base.sampler import NoDuplicatesBatchSampler
from transformers import TrainerControl, TrainerState

from tbhns_opensearch.errors import ConfigError
from tbhns_opensearch.training import distributed, losses
from tbhns_opensearch.training.card import _processes
from tbhns_opensearch.training.config import DataConfig, LossConfig, TrainConfig
from tbhns_opensearch.training.distributed import WholeBatches, World, check_distributed, torchrun_args
from tbhns_opensearch.training.experimental.config import ExperimentalConfig, PreferenceConfig
from tbhns_opensearch.training.monitor import FollowStop

# 23 rows; texts repeat across rows (a positive is another row's anchor), so a pass without repeats leaves short
# batches behind
ROWS = Dataset.from_dict(
    {
        "anchor": [f"q{i % 17}" for i in range(23)],
        "positive": [f"p{i % 19}" for i in range(23)],
        "negative": [f"q{(i + 5) % 17}" for i in range(23)],
    }
)


def _batches(batch_size: int = 6, epoch: int = 0) -> list[list[int]]:
    sampler = WholeBatches(ROWS, batch_size, False, inner=NoDuplicatesBatchSampler, generator=torch.Generator(), seed=5)
    sampler.set_epoch(epoch)
    return list(sampler)


@pytest.mark.parametrize("epoch", [0, 1, 2])
def test_whole_batches_are_full_and_hold_each_row_at_most_once(epoch: int) -> None:
    batches = _batches(epoch=epoch)
    rows = [row for batch in batches for row in batch]
    assert [len(batch) for batch in batches] == [6, 6, 6]  # 23 // 6, every epoch
    assert len(rows) == len(set(rows)) == 18  # the other 5 rows wait for a later epoch
    assert batches == _batches(epoch=epoch)  # seeded by the seed and the epoch


def test_the_rows_a_pass_leaves_in_short_batches_are_packed_into_full_ones() -> None:
    inner = NoDuplicatesBatchSampler(ROWS, 6, False, generator=torch.Generator(), seed=5)
    passed = list(inner)  # epoch 0: one pass over every row, no text twice in a batch
    assert [len(batch) for batch in passed] == [6, 6, 5, 5, 1]
    batches = _batches(epoch=0)
    assert batches[:2] == passed[:2] and batches[2] == passed[2] + passed[3][:1]  # the short ones' rows, in order


def test_the_epochs_draw_in_different_orders_and_every_row_comes_in_turn() -> None:
    drawn = [sorted(row for batch in _batches(epoch=epoch) for row in batch) for epoch in range(6)]
    assert len({tuple(rows) for rows in drawn}) > 1
    assert set().union(*drawn) == set(range(23))


def test_each_rank_takes_its_share_of_every_whole_batch() -> None:
    def shard(rank: int) -> list[list[int]]:  # what accelerate's split_batches hands a rank
        sampler = WholeBatches(ROWS, 6, False, inner=NoDuplicatesBatchSampler, generator=torch.Generator(), seed=5)
        return list(BatchSamplerShard(sampler, num_processes=2, process_index=rank, split_batches=True))

    whole, first, second = _batches(), shard(0), shard(1)
    assert [len(batch) for batch in first + second] == [3] * 6
    assert [a + b for a, b in zip(first, second)] == whole  # disjoint halves of the same batches
    assert not {row for batch in first for row in batch} & {row for batch in second for row in batch}


def test_world_comes_from_torchruns_environment() -> None:
    assert World.from_env({}) == World(0, 1, 0) and World.from_env({}).main
    ranked = World.from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (ranked.main, ranked.distributed, ranked.local_rank) == (False, True, 1)


def test_tbhns_train_nproc_launches_exactly_torchruns_module_command() -> None:
    assert torchrun_args(4, ["train", "x.toml", "--resume"]) == [
        "--standalone",
        "--nproc-per-node",
        "4",
        "-m",
        "tbhns_opensearch",
        "train",
        "x.toml",
        "--resume",
    ]


CONFIG = TrainConfig(data=DataConfig(dataset="icecat"), batch_size=16)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"batch_size": 18}, r"batch_size=18 does not split over 4 processes .*; use a multiple of 4"),
        ({"device": "cuda:1"}, r"device='cuda:1' on 4 processes: use device = \"cuda\" .*or \"cpu\" \(gloo\)"),
        (
            {"experimental": ExperimentalConfig(stage2=PreferenceConfig())},
            r"\[experimental.stage2\] runs in one process",
        ),
    ],
)
def test_what_several_processes_cannot_do_is_refused_in_one_line(overrides: dict[str, object], message: str) -> None:
    check_distributed(CONFIG, 1)  # one process: nothing to check
    check_distributed(CONFIG.with_overrides(device="cuda"), 4)
    with pytest.raises(ConfigError, match=message):
        check_distributed(CONFIG.with_overrides(**overrides), 4)


def test_the_other_ranks_stop_when_rank_0_shares_its_early_stop() -> None:
    shared: list[bool] = []

    def share(flag: bool) -> bool:  # rank 0 decided to stop at step 6
        shared.append(flag)
        return len(shared) == 2

    follow, state, control = FollowStop(eval_every=3, share=share), TrainerState(max_steps=10), TrainerControl()
    for step in range(1, 11):
        state.global_step = step
        follow.on_step_end(None, state, control)  # type: ignore[arg-type]
        if control.should_training_stop:
            break
    assert state.global_step == 6 and shared == [False, False]  # asked at the validation steps 3 and 6 only


def test_the_loss_gathers_across_processes_only_when_there_are_several(monkeypatch: pytest.MonkeyPatch) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(1, 1))  # the losses only keep it here
    assert not losses.LOSSES["mnrl"](model, CONFIG).gather_across_devices  # type: ignore[arg-type]
    monkeypatch.setattr(losses, "world_size", lambda: 2)
    for name in ("mnrl", "cached_mnrl"):
        assert losses.LOSSES[name](model, CONFIG).gather_across_devices  # type: ignore[arg-type]
    apart = CONFIG.with_overrides(loss=LossConfig(gather_across_devices=False))
    assert not losses.LOSSES["mnrl"](model, apart).gather_across_devices  # type: ignore[arg-type]
    assert distributed.world_size() == 1  # no process group here


def test_the_card_says_how_many_processes_trained_the_model() -> None:
    config = {"batch_size": 16, "loss": {"name": "mnrl", "gather_across_devices": True}}
    assert _processes(config, 1) == ""
    assert (
        _processes(config, 2)
        == ", 2 processes (batch_size 16 split over them, in-batch negatives gathered across them)"
    )
    config["loss"]["gather_across_devices"] = False
    assert _processes(config, 4).endswith("in-batch negatives within each)")


def test_nproc_with_a_batch_that_does_not_split_exits_2_with_one_line(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    from tbhns_opensearch.cli.app import main

    config_file = tmp_path / "tiny.toml"
    config_file.write_text('batch_size = 16\n[data]\ncatalog = "toys.jsonl"\n')
    monkeypatch.setattr("sys.argv", ["tbhns", "train", str(config_file), "--nproc", "3"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: batch_size=16 does not split over 3 processes (each takes batch_size / 3 rows of every batch); "
        "use a multiple of 3"
    ]


@pytest.mark.parametrize("nproc", ["1", "2"])
def test_a_cuda_device_this_machine_lacks_exits_2_with_one_line_before_anything_loads(
    nproc: str, tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    import torch

    from tbhns_opensearch.cli.app import main

    missing = f"cuda:{torch.cuda.device_count()}"  # one past this machine's last GPU (cuda:0 on a CPU machine)
    config_file = tmp_path / "tiny.toml"
    config_file.write_text('batch_size = 16\n[data]\ncatalog = "toys.jsonl"\n')  # never read: refused first
    monkeypatch.setattr("sys.argv", ["tbhns", "train", str(config_file), "--device", missing, "--nproc", nproc])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: device='{missing}': '{missing}' is not on this machine, which has ")
    assert line.endswith(
        'train on the CPU (--device cpu, or device = "cpu" in the config) or on a machine with that device'
    )
