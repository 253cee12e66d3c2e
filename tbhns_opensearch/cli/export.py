"""`tbhns export`: any sentence-transformers encoder as a folder ingest and search run with onnxruntime."""

from __future__ import annotations

from pathlib import Path

import click

from tbhns_opensearch.cli.app import cli


@cli.command("export")
@click.argument("encoder")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--max-seq-length", type=click.IntRange(1, 8192), help="tokens per text [default: the model's]")
def export_command(encoder: str, out: Path, max_seq_length: int | None) -> None:
    """Export ENCODER (a sentence-transformers folder or name; the default all-MiniLM-L6-v2 is packaged) to OUT:
    the model folder, an ONNX graph checked against torch, and the manifest. `--backend auto` then runs it with
    onnxruntime at ingest and query time. No int8 graph: its gate needs judged queries (`tbhns train`).

    Example: tbhns export all-MiniLM-L6-v2 runs/encoders/minilm && tbhns ingest catalog.jsonl --encoder runs/encoders/minilm
    """
    from tbhns_opensearch.encoder import load_sentence_transformer
    from tbhns_opensearch.encoder.export import SAMPLE_TEXTS, export_model

    model = load_sentence_transformer(encoder, "cpu")
    if max_seq_length:
        model.max_seq_length = max_seq_length
    report = export_model(model, out, base_model=encoder, sample_texts=SAMPLE_TEXTS, quantize=False)
    click.echo(f"{out}: dimension {report.dimension}, max_seq_length {report.max_seq_length}, {report.pooling} "
               f"pooling; ONNX min cosine to torch {report.onnx.min_cosine:.6f} ({report.onnx.size_mb} MB)")  # fmt: skip
