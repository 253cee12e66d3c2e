"""`tbhns train`: one training run, exported."""

from __future__ import annotations

from pathlib import Path

import click

from tbhns_opensearch.cli.app import PORT_HELP, cli, cluster_for


@cli.command("train")
@click.argument("config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--device", help="torch device: cpu, cuda, cuda:1, mps [default: the config's, cpu]")
@click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16"]),
    help="bf16: steps under bfloat16 autocast, on a CPU with AMX / AVX-512 BF16 or a bf16 GPU "
    "[default: the config's, fp32]",
)
@click.option("--max-steps", type=int, help="optimizer steps [default: the config's]")
@click.option(
    "--output",
    "output_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="model directory [default: the config's output_dir, else runs/train/<config name>]",
)
@click.option(
    "--port", default=9200, show_default=True, help=PORT_HELP + " (bm25 sampler, when OPENSEARCH_URL is unset)"
)
def train_command(
    config_file: Path,
    device: str | None,
    precision: str | None,
    max_steps: int | None,
    output_dir: Path | None,
    port: int,
) -> None:
    """Train an encoder from CONFIG_FILE (training/*.toml); write the model, ONNX export and model card, and with a
    [personalization] table the user model beside it (max_steps = 0 keeps the base encoder)."""
    from tbhns_opensearch.training.config import load_train_config
    from tbhns_opensearch.training.pipeline import train_and_export

    config = load_train_config(config_file).with_overrides(
        device=device, precision=precision, max_steps=max_steps, output_dir=str(output_dir) if output_dir else None
    )
    trained = train_and_export(config, opensearch=cluster_for(port) if config.sampler.name == "bm25" else None)
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
