"""`tbhns export`: any sentence-transformers encoder as a folder ingest and search run with onnxruntime."""

from __future__ import annotations

from pathlib import Path

import click

from tbhns_opensearch.cli.app import cli
from tbhns_opensearch.cli.options import field_option


@cli.command("export")
@click.argument("encoder")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--max-seq-length", type=click.IntRange(1, 8192), help="tokens per text [default: the model's]")
@click.option(
    "--int8-gate-dataset",
    type=click.Choice(["icecat", "wands", "homedepot"]),
    help="also write the int8 graph, accepted only if its NDCG@10 and R@24 on this set's judged queries "
    "stay within --int8-tolerance of fp32",
)
@click.option(
    "--data-dir", type=click.Path(path_type=Path), help="folder of the gate dataset [default: ../shared/data/<set>]"
)
@field_option(
    "--int8-tolerance",
    source="tbhns_opensearch.training.int8_gate:INT8_TOLERANCE",
    type=click.FloatRange(0, 1),
    help="largest drop of any gate metric int8 may show against fp32",
)
def export_command(
    encoder: str,
    out: Path,
    max_seq_length: int | None,
    int8_gate_dataset: str | None,
    data_dir: Path | None,
    int8_tolerance: float,
) -> None:
    """Export ENCODER (a sentence-transformers folder or name; the other commands' default ships with the package) to
    OUT:
    the model folder, an ONNX graph checked against torch, and the manifest. `--backend auto` then runs it with
    onnxruntime at ingest and query time. With --int8-gate-dataset, also the int8 graph and its retrieval gate.

    Example: tbhns export all-MiniLM-L6-v2 runs/encoders/minilm &&
    tbhns ingest catalog.jsonl --encoder runs/encoders/minilm
    """
    from tbhns_opensearch.catalog.adapters import read_dataset
    from tbhns_opensearch.encoder import load_sentence_transformer
    from tbhns_opensearch.encoder.export import SAMPLE_TEXTS, export_model, record_int8_gate
    from tbhns_opensearch.eval.metrics import MetricConfig
    from tbhns_opensearch.eval.queries import load_labelled_queries
    from tbhns_opensearch.training.int8_gate import judged_split, measure_int8_gate

    model = load_sentence_transformer(encoder, "cpu")
    if max_seq_length:
        model.max_seq_length = max_seq_length
    report = export_model(model, out, base_model=encoder, sample_texts=SAMPLE_TEXTS, quantize=bool(int8_gate_dataset))
    click.echo(
        f"{out}: dimension {report.dimension}, max_seq_length {report.max_seq_length}, {report.pooling} "
        f"pooling; ONNX min cosine to torch {report.onnx.min_cosine:.6f} ({report.onnx.size_mb} MB)"
    )
    if int8_gate_dataset:
        split = judged_split(load_labelled_queries("judgments", int8_gate_dataset, data_dir))
        gate = measure_int8_gate(
            out, split, list(read_dataset(int8_gate_dataset, data_dir)), MetricConfig(), int8_tolerance
        )
        record_int8_gate(report, encoder, gate.to_dict())
        click.echo(
            f"int8: {'accepted' if gate.accepted else 'refused'} on {gate.queries} judged {int8_gate_dataset} "
            f"queries over {gate.products} products: fp32 {gate.fp32}, int8 {gate.int8} ({gate.reason})"
        )
