"""Export a trained model: the sentence-transformers folder, a checked ONNX graph, an int8 variant, a manifest.

The directory `tbhns train` writes:

    <dir>/                      sentence-transformers model + tokenizer (Encoder(dir), backend "torch")
    <dir>/onnx/model.onnx       tokens -> mean-pooled, L2-normalized vector (backend "onnx")
    <dir>/onnx/model_qint8.onnx the same, weights dynamically quantized to int8 (backend "onnx-int8")
    <dir>/tbhns_manifest.json   dimension, space type, normalization, max_seq_length, base model, ONNX parity
                                (and "user_model", when a [personalization] run trained one into <dir>/user_model/)

The ONNX graph is exported with `torch.onnx.export` (the TorchScript exporter: no extra dependency) from
the transformer plus the model's pooling (mean or CLS) and normalization, with dynamic batch and sequence
axes, then loaded back through `Encoder(dir, backend="onnx")` and compared with the torch model on sample
texts: every cosine must be >= 1 - tolerance (1e-4), else the export fails. The int8 variant's vector parity
is measured and reported here; whether it may be used is decided by its retrieval metrics against fp32
(`record_int8_gate`, measured by `tbhns train` on its validation queries), and until then it is refused.

Example:
    >>> report = export_model(model, Path("runs/train/toys"), base_model="all-MiniLM-L6-v2",
    ...                       sample_texts=["lego duplo", "kite"])  # doctest: +SKIP
    >>> report.onnx.min_cosine >= 1 - 1e-4  # doctest: +SKIP
    True
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tbhns_opensearch.encoder import (
    INT8_GATE,
    MANIFEST_FILE,
    ONNX_FILE,
    ONNX_INT8_FILE,
    ONNX_OUTPUT,
    OnnxBackend,
    read_manifest,
)
from tbhns_opensearch.errors import EncoderError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

PARITY_TOLERANCE = 1e-4
OPSET = 17
_POOLINGS = ("mean", "cls")
_SUPPORTED_MODULES = ("Transformer", "Pooling", "Normalize")
USER_MODEL_ENTRY = "user_model"  # the manifest's entry for a user model beside the encoder
SAMPLE_TEXTS = (  # parity texts for a model exported without training data: queries, titles, one truncated
    "usb c cable",
    "cordless drill 18v",
    "led bulb e27 warm white",
    "Samsung 55 inch 4K UHD Smart TV",
    "HP LaserJet Pro M404dn monochrome laser printer | HP | Printers",
    "Stainless steel angle bracket 2-1/2 in., zinc plated, pack of 4 " * 12,
)


@dataclass(frozen=True)
class ParityCheck:
    """How closely an ONNX graph reproduces the torch model on sample texts.

    Args:
        file: The graph, relative to the model directory.
        min_cosine: Lowest cosine between the ONNX and torch vectors of a text.
        mean_cosine: Mean of those cosines.
        texts: How many sample texts were compared.
        size_mb: File size.
    """

    file: str
    min_cosine: float
    mean_cosine: float
    texts: int
    size_mb: float


@dataclass(frozen=True)
class ExportReport:
    """What `export_model` wrote and how the ONNX graphs compare with torch."""

    directory: Path
    dimension: int
    max_seq_length: int
    pooling: str
    onnx: ParityCheck
    quantized: ParityCheck | None
    int8_gate: dict[str, Any] | None = None  # the retrieval gate, once measured (`record_int8_gate`)


def export_model(
    model: SentenceTransformer,
    directory: Path,
    *,
    base_model: str,
    sample_texts: Sequence[str],
    quantize: bool = True,
    tolerance: float = PARITY_TOLERANCE,
) -> ExportReport:
    """Write the model folder, the ONNX graph (checked), optionally the int8 graph, and the manifest.

    Args:
        model: The trained sentence-transformers model (Transformer + Pooling [+ Normalize]).
        directory: Output folder (created; existing files are overwritten).
        base_model: The model training started from, for the manifest.
        sample_texts: Texts for the parity check (queries and product texts; long ones test truncation).
        quantize: Also write and measure `onnx/model_qint8.onnx`.
        tolerance: The ONNX graph fails unless every cosine to torch is >= 1 - tolerance.
    """
    if not sample_texts:
        raise EncoderError("export needs sample texts for the ONNX parity check; pass a few queries and products")
    directory.mkdir(parents=True, exist_ok=True)
    model.save(str(directory))
    pooling = pooling_mode(model)
    export_onnx(model, directory / ONNX_FILE, pooling)
    reference = model.encode(
        list(sample_texts), convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
    )
    onnx = _parity(directory, ONNX_FILE, reference, sample_texts)
    if onnx.min_cosine < 1 - tolerance:
        raise EncoderError(
            f"the ONNX export in {directory / ONNX_FILE} differs from torch: min cosine "
            f"{onnx.min_cosine:.6f} < {1 - tolerance}; check the pooling ({pooling}) and opset {OPSET}"
        )
    quantized = None
    if quantize:
        quantize_onnx(directory / ONNX_FILE, directory / ONNX_INT8_FILE)
        quantized = _parity(directory, ONNX_INT8_FILE, reference, sample_texts)
    report = ExportReport(directory, int(reference.shape[1]), int(model.max_seq_length), pooling, onnx, quantized)
    write_manifest(report, base_model)
    return report


def pooling_mode(model: SentenceTransformer) -> str:
    """The model's pooling ("mean" or "cls"); other architectures cannot be exported here."""
    names = tuple(type(module).__name__ for module in model)
    if names[:2] != _SUPPORTED_MODULES[:2] or not set(names[2:]) <= {"Normalize"}:
        raise EncoderError(
            f"cannot export a model made of {names}; ONNX export supports {' + '.join(_SUPPORTED_MODULES)} (optional)"
        )
    mode = model[1].get_config_dict().get("pooling_mode")
    if mode not in _POOLINGS:
        raise EncoderError(f"cannot export pooling {mode!r}; supported: {', '.join(_POOLINGS)}")
    return str(mode)


def export_onnx(model: SentenceTransformer, path: Path, pooling: str) -> None:
    """Write `path`: input ids (+ attention mask, token types) -> pooled, normalized vector of shape (batch, dim)."""
    graph = PooledEncoder(copy.deepcopy(model[0].auto_model).cpu().eval(), pooling)
    tokens = model.tokenizer(
        ["a short query", "a longer product title, with a brand and a category"], padding=True, return_tensors="pt"
    )
    names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in tokens]
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {name: {0: "batch", 1: "sequence"} for name in names} | {ONNX_OUTPUT: {0: "batch"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python control flow in the transformer
        torch.onnx.export(
            graph,
            tuple(tokens[name] for name in names),
            str(path),
            input_names=names,
            output_names=[ONNX_OUTPUT],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )


def quantize_onnx(source: Path, target: Path) -> None:
    """Dynamic int8 quantization of the weights, per channel (onnxruntime); activations stay float.

    Per-channel scales keep all-MiniLM-L6-v2 at cosine ~0.99 to torch, against ~0.96 per tensor.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime logs a generic "consider pre-processing" warning on the root logger
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        root.setLevel(level)


def write_manifest(report: ExportReport, base_model: str) -> Path:
    """`tbhns_manifest.json`: what an index and a query encoder need to agree on."""
    manifest: dict[str, Any] = {
        "dimension": report.dimension,
        "space_type": "cosinesimil",
        "normalized": True,
        "max_seq_length": report.max_seq_length,
        "pooling": report.pooling,
        "base_model": base_model,
        "backends": ["torch", "onnx"] + (["onnx-int8"] if report.int8_gate and report.int8_gate["accepted"] else []),
        "onnx": asdict(report.onnx),
        "onnx_int8": asdict(report.quantized) if report.quantized else None,
        INT8_GATE: report.int8_gate,
    }
    path = report.directory / MANIFEST_FILE
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def record_int8_gate(report: ExportReport, base_model: str, gate: dict[str, Any]) -> ExportReport:
    """`report` with the int8 graph's retrieval gate (`accepted`, `reason`, metrics), rewritten into the manifest;
    `onnx-int8` is listed among the backends only when the gate accepted it."""
    if report.quantized is None:
        raise EncoderError(f"{report.directory} has no int8 graph to gate; export it with quantize=True")
    report = replace(report, int8_gate=gate)
    write_manifest(report, base_model)
    return report


def record_user_model(directory: Path, entry: dict[str, Any]) -> Path:
    """Add `entry` (the user model beside the encoder: path, format, max_history, dim, figures) to the manifest
    under "user_model"; `training.personalization` writes it after the export.

    Example:
        >>> record_user_model(Path("runs/train/x"), {"path": "user_model", "max_history": 50})  # doctest: +SKIP
        PosixPath('runs/train/x/tbhns_manifest.json')
    """
    manifest = read_manifest(str(directory))
    if not manifest:
        raise EncoderError(
            f"{directory} has no {MANIFEST_FILE}; export the encoder (export_model) before its user model"
        )
    path = directory / MANIFEST_FILE
    path.write_text(json.dumps({**manifest, USER_MODEL_ENTRY: entry}, indent=2) + "\n")
    return path


def _parity(directory: Path, file: str, reference: np.ndarray, texts: Sequence[str]) -> ParityCheck:
    vectors = OnnxBackend(str(directory), "cpu", file=file).encode(list(texts), batch_size=32)  # (n, dim), unit rows
    cosines = np.sum(vectors * reference, axis=1) / np.linalg.norm(reference, axis=1)  # (n,)
    size_mb = (directory / file).stat().st_size / 2**20
    return ParityCheck(file, float(cosines.min()), float(cosines.mean()), len(texts), round(size_mb, 1))


class PooledEncoder(torch.nn.Module):
    """The transformer with pooling and L2 normalization, as one graph: tokens -> unit vectors (batch, dim)."""

    def __init__(self, transformer: torch.nn.Module, pooling: str) -> None:
        super().__init__()
        self.transformer = transformer
        self.pooling = pooling

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        if self.pooling == "cls":
            pooled = hidden[:, 0]  # (batch, dim)
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (batch, seq, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (batch, dim)
        return torch.nn.functional.normalize(pooled, p=2, dim=1)
