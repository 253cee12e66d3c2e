"""`tbhns train`: one training run, exported."""

from __future__ import annotations

from pathlib import Path

import click

from tbhns_opensearch.cli.app import cli, cluster_for, port_option
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
def train_command(
    config_file: Path,
    device: str | None,
    precision: str | None,
    max_steps: int | None,
    output_dir: Path | None,
    port: int,
    resume: bool,
) -> None:
    """Train an encoder from CONFIG_FILE (training/*.toml); write the model, ONNX export and model card, and with a
    [personalization] table the user model beside it (max_steps = 0 keeps the base encoder)."""
    from tbhns_opensearch.training.config import load_train_config
    from tbhns_opensearch.training.pipeline import train_and_export

    config = load_train_config(config_file).with_overrides(
        device=device, precision=precision, max_steps=max_steps, output_dir=str(output_dir) if output_dir else None
    )
    if resume:  # a missing or foreign checkpoint is refused here, before anything loads
        from tbhns_opensearch.training.checkpoints import find_checkpoint

        checkpoint = find_checkpoint(config)
        click.echo(f"resuming from {checkpoint} (step {checkpoint.name.split('-')[-1]} of {config.max_steps})")
    opensearch = cluster_for(port) if config.sampler.name == "bm25" else None
    trained = train_and_export(config, opensearch=opensearch, resume=resume)
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
