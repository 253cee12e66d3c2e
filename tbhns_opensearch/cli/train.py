"""`tbhns train`: one training run, exported."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tbhns_opensearch.cli.app import INTERRUPTED, TERMINATED, cli, cluster_for, port_option
from tbhns_opensearch.cli.options import field_option

TRAIN = "tbhns_opensearch.training.config:TrainConfig."  # the `field_option` sources: the config's own fields


def _override(flag: str, name: str, **attrs: object):  # type: ignore[no-untyped-def]
    """`flag` overrides the config's `name`: help from `TrainConfig.name`; left unset, the config's value stands."""
    return field_option(
        flag,
        name,
        source=TRAIN + name,
        pick=lambda _: None,
        show_default=False,
        note=" [default: the config's]",
        **attrs,
    )


@cli.command("train")
@click.argument("config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_override("--device", "device")
@_override("--precision", "precision")
@_override("--max-steps", "max_steps", type=int)
@_override("--output", "output_dir", type=click.Path(file_okay=False, path_type=Path))
@port_option(note=" (bm25 sampler, when OPENSEARCH_URL is unset)")
@click.option(
    "--resume",
    is_flag=True,
    help="continue from the newest checkpoint in <output>/checkpoints (checkpoint_every) after a kill; the config "
    "must be the one that saved it",
)
@click.option(
    "--nproc",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="processes that train one model together on this machine (torchrun --standalone --nproc-per-node N "
    "-m tbhns_opensearch train ...): gloo on CPU, NCCL with --device cuda; batch_size is split over them",
)
def train_command(
    config_file: Path,
    device: str | None,
    precision: str | None,
    max_steps: int | None,
    output_dir: Path | None,
    port: int,
    resume: bool,
    nproc: int,
) -> None:
    """Train an encoder from CONFIG_FILE (training/*.toml); write the model, ONNX export and model card, and with a
    [personalization] table the user model beside it (max_steps = 0 keeps the base encoder)."""
    from tbhns_opensearch.training.checkpoints import find_checkpoint
    from tbhns_opensearch.training.config import load_train_config
    from tbhns_opensearch.training.distributed import World, check_distributed
    from tbhns_opensearch.training.pipeline import train_and_export
    from tbhns_opensearch.training.trainer import check_device

    config = load_train_config(config_file).with_overrides(
        device=device, precision=precision, max_steps=max_steps, output_dir=str(output_dir) if output_dir else None
    )
    world = World.from_env()  # under torchrun: this process's rank
    if nproc > 1 and world.distributed:
        raise click.UsageError("--nproc starts torchrun itself; under torchrun leave it out")
    check_device(config)  # refused here, before any process starts
    check_distributed(config, max(nproc, world.size))
    checkpoint = find_checkpoint(config) if resume else None  # a missing or foreign checkpoint too
    if checkpoint is not None and world.main and nproc == 1:  # with --nproc, rank 0 says it
        click.echo(f"resuming from {checkpoint} (step {checkpoint.name.split('-')[-1]} of {config.max_steps})")
    bm25 = config.sampler.name == "bm25"
    opensearch = cluster_for(port, start=not world.distributed) if bm25 else None  # --nproc: started below first
    if nproc > 1:
        flags = {"--device": device, "--precision": precision, "--max-steps": max_steps, "--output": output_dir}
        args = [f"{flag}={value}" for flag, value in flags.items() if value is not None]
        _launch(nproc, ["train", str(config_file), *args, f"--port={port}", *(["--resume"] if resume else [])])
    trained = train_and_export(config, opensearch=opensearch, resume=resume)
    if trained is None:  # another process of a distributed run: rank 0 reports
        return
    result, report, directory = trained.result, trained.export, trained.directory
    metric = config.select_metric
    click.echo(
        f"{directory}: {result.steps} steps in {result.wall_s:.0f}s, best step {result.best_step}, "
        f"validation {metric} {result.history[0].metrics[metric]:.4f} -> {result.best_validation[metric]:.4f}; "
        f"ONNX min cosine {report.onnx.min_cosine:.6f}"
    )
    if entry := trained.user_model:
        plain, learned = entry["validation"]["plain"], entry["validation"]["learned"]
        click.echo(
            f"{directory / entry['path']}: user model, best epoch {entry['best_epoch']} of {entry['epochs']} in "
            f"{entry['train_s']:.0f}s; VALIDATION users, DERIVED {entry['query_form']} queries: recall@24 "
            f"{plain['recall@24']:.4f} (plain) -> {learned['recall@24']:.4f}, ndcg@10 {plain['ndcg@10']:.4f} -> "
            f"{learned['ndcg@10']:.4f}"
        )


def _launch(nproc: int, args: list[str]) -> None:
    """`tbhns ARGS` on `nproc` processes under torchrun (`training.distributed.launch`); exits with its code."""
    from tbhns_opensearch.training.distributed import launch

    code = launch(nproc, args)
    if code == TERMINATED or code == INTERRUPTED:
        click.echo(
            "training stopped: rerun the command, with --resume to go on from its newest checkpoint (checkpoint_every)",
            err=True,
        )
    sys.exit(code)
