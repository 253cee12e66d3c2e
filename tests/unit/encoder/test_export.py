"""ONNX export of an encoder: parity with torch, onnxruntime loading, the int8 variant, the manifest; the
bfloat16 torch backend's parity."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tbhns_opensearch.encoder import BACKENDS, MANIFEST_FILE, Encoder, native_bf16
from tbhns_opensearch.encoder.export import PARITY_TOLERANCE, ExportReport, export_model, pooling_mode, record_int8_gate
from tbhns_opensearch.errors import EncoderError
from tbhns_opensearch.training.config import DataConfig, TrainConfig
from tbhns_opensearch.training.int8_gate import decide
from tbhns_opensearch.training.trainer import load_model
from tests.helpers import fixture_products

SAMPLES = ["lego duplo fire station", "usb-c cable 2m", "kite"]
UNSEEN = ["wooden train set for toddlers", "Hornby 2014 Catalogue | Hornby | Trains " * 8, "x", "bluetooth speaker"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, ExportReport]:
    model = load_model(TrainConfig(data=DataConfig(catalog="c.jsonl"), max_seq_length=32))
    products = [p.text_for_embedding() for p in fixture_products("toys_products.jsonl")[:5]]
    report = export_model(
        model, tmp_path_factory.mktemp("model"), base_model="all-MiniLM-L6-v2", sample_texts=SAMPLES + products
    )
    return model, report


def test_onnx_matches_torch_and_loads_in_onnxruntime(exported) -> None:  # type: ignore[no-untyped-def]
    _, report = exported
    assert report.onnx.min_cosine >= 1 - PARITY_TOLERANCE
    assert (report.directory / "onnx" / "model.onnx").is_file() and report.onnx.texts == 8
    import onnxruntime as ort

    session = ort.InferenceSession(str(report.directory / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask", "token_type_ids"]
    assert session.get_outputs()[0].shape == ["batch", 384]


def test_onnx_backend_matches_torch_on_unseen_texts(exported) -> None:  # type: ignore[no-untyped-def]
    _, report = exported
    torch_vectors = Encoder(str(report.directory)).encode(UNSEEN)
    onnx = Encoder(str(report.directory), backend="onnx", batch_size=3)
    onnx_vectors = onnx.encode(UNSEEN)
    assert onnx.dimension == 384 and onnx_vectors.dtype == np.float32 and onnx_vectors.shape == (4, 384)
    assert np.allclose(np.linalg.norm(onnx_vectors, axis=1), 1.0, atol=1e-5)
    assert np.min(np.sum(torch_vectors * onnx_vectors, axis=1)) >= 1 - PARITY_TOLERANCE
    assert onnx.encode([]).shape == (0, 384)


def test_int8_variant_is_smaller_and_close_but_refused_until_its_gate_accepts_it(exported) -> None:  # type: ignore[no-untyped-def]
    _, report = exported
    assert report.quantized is not None
    assert report.quantized.size_mb < report.onnx.size_mb / 3
    assert report.quantized.min_cosine > 0.95
    with pytest.raises(EncoderError, match="int8 graph .* is not accepted: no retrieval gate was measured"):
        Encoder(str(report.directory), backend="onnx-int8").encode(SAMPLES)
    gate = decide({"ndcg@10": 0.5, "recall@24": 0.6}, {"ndcg@10": 0.45, "recall@24": 0.6}, 0.01, queries=3, products=9)
    record_int8_gate(report, "all-MiniLM-L6-v2", gate.to_dict())
    with pytest.raises(EncoderError, match="ndcg@10 fell by 0.0500 > 0.01"):
        Encoder(str(report.directory), backend="onnx-int8").encode(SAMPLES)
    assert json.loads((report.directory / MANIFEST_FILE).read_text())["backends"] == ["torch", "onnx"]
    gate = decide(
        {"ndcg@10": 0.5, "recall@24": 0.6}, {"ndcg@10": 0.495, "recall@24": 0.61}, 0.01, queries=3, products=9
    )
    record_int8_gate(report, "all-MiniLM-L6-v2", gate.to_dict())
    vectors = Encoder(str(report.directory), backend="onnx-int8").encode(SAMPLES)
    assert vectors.shape == (3, 384)
    manifest = json.loads((report.directory / MANIFEST_FILE).read_text())
    assert manifest["backends"] == ["torch", "onnx", "onnx-int8"] and manifest["int8_gate"]["accepted"] is True


def test_the_gate_refuses_any_metric_outside_the_tolerance() -> None:
    fp32 = {"ndcg@10": 0.40, "recall@24": 0.60}
    assert decide(fp32, {"ndcg@10": 0.40, "recall@24": 0.589}, 0.01, queries=1, products=1).accepted is False
    assert decide(fp32, {"ndcg@10": 0.391, "recall@24": 0.65}, 0.01, queries=1, products=1).accepted is True
    assert decide(fp32, {"ndcg@10": 0.40, "recall@24": 0.60}, 0.0, queries=1, products=1).accepted is True


def test_manifest_describes_the_vectors(exported) -> None:  # type: ignore[no-untyped-def]
    _, report = exported
    manifest = json.loads((report.directory / MANIFEST_FILE).read_text())
    assert manifest["dimension"] == 384 and manifest["space_type"] == "cosinesimil" and manifest["normalized"] is True
    assert manifest["max_seq_length"] == 32 and manifest["base_model"] == "all-MiniLM-L6-v2"
    assert manifest["backends"][:2] == ["torch", "onnx"]  # int8 joins once its retrieval gate accepts it
    assert manifest["onnx"]["file"] == "onnx/model.onnx" and manifest["onnx"]["min_cosine"] >= 1 - PARITY_TOLERANCE


def test_export_keeps_max_seq_length(exported) -> None:  # type: ignore[no-untyped-def]
    _, report = exported
    assert Encoder(str(report.directory)).model.max_seq_length == 32
    assert Encoder(str(report.directory), backend="onnx").runtime.max_seq_length == 32  # type: ignore[attr-defined]


def test_unknown_backend_lists_the_valid_ones() -> None:
    with pytest.raises(
        EncoderError,
        match="unknown encoder backend 'tensorrt'; valid backends: auto, torch, torch-bf16, onnx, onnx-int8",
    ):
        Encoder("x", backend="tensorrt")
    assert set(BACKENDS) == {"torch", "torch-bf16", "onnx", "onnx-int8"}


@pytest.mark.skipif(not native_bf16("cpu"), reason="this CPU has neither AMX nor AVX-512 BF16")
def test_bf16_backend_matches_torch_within_the_onnx_tolerance(exported) -> None:  # type: ignore[no-untyped-def]
    _, report = exported
    torch_vectors = Encoder(str(report.directory)).encode(UNSEEN)
    bf16 = Encoder(str(report.directory), backend="torch-bf16", batch_size=3)
    bf16_vectors = bf16.encode(UNSEEN)
    assert bf16_vectors.dtype == np.float32 and bf16_vectors.shape == (4, 384)
    assert np.allclose(np.linalg.norm(bf16_vectors, axis=1), 1.0, atol=1e-5)
    assert not np.array_equal(bf16_vectors, torch_vectors)  # it did run in bfloat16
    assert np.min(np.sum(torch_vectors * bf16_vectors, axis=1)) >= 1 - PARITY_TOLERANCE
    assert bf16.model.dtype == torch.float32  # the weights stay float32: training and export are unchanged


def test_bf16_backend_is_refused_where_bfloat16_would_be_emulated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    assert not native_bf16("cpu")
    with pytest.raises(EncoderError, match="needs a device that multiplies bfloat16 natively.*use backend 'onnx'"):
        Encoder("all-MiniLM-L6-v2", backend="torch-bf16").encode(["x"])


def test_onnx_backend_needs_an_export(tmp_path: Path) -> None:
    with pytest.raises(EncoderError, match="no onnx/model.onnx in .*written by `tbhns train`"):
        Encoder(str(tmp_path), backend="onnx").encode(["x"])


def test_onnx_backend_has_no_torch_model(exported) -> None:  # type: ignore[no-untyped-def]
    _, report = exported
    with pytest.raises(EncoderError, match="has no SentenceTransformer; use backend='torch'"):
        _ = Encoder(str(report.directory), backend="onnx").model


def test_export_refuses_unsupported_pooling(exported) -> None:  # type: ignore[no-untyped-def]
    model, _ = exported
    assert pooling_mode(model) == "mean"
    pooling = model[1]
    original = pooling.pooling_mode
    try:
        pooling.pooling_mode = "max"
        with pytest.raises(EncoderError, match="cannot export pooling 'max'; supported: mean, cls"):
            pooling_mode(model)
    finally:
        pooling.pooling_mode = original


def test_export_needs_sample_texts(exported, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model, _ = exported
    with pytest.raises(EncoderError, match="needs sample texts"):
        export_model(model, tmp_path, base_model="m", sample_texts=[])


def test_ingest_refuses_a_space_type_other_than_the_manifest_says(tmp_path: Path) -> None:
    from tbhns_opensearch.encoder import Encoder
    from tbhns_opensearch.errors import IngestError
    from tbhns_opensearch.index.ingest import ingest_products
    from tbhns_opensearch.index.templates import IndexConfig

    (tmp_path / MANIFEST_FILE).write_text(json.dumps({"dimension": 384, "space_type": "cosinesimil"}))
    with pytest.raises(IngestError, match="trained for space type 'cosinesimil'.*--space-type cosinesimil"):
        ingest_products(None, [], Encoder(str(tmp_path)), IndexConfig(space_type="l2"))  # type: ignore[arg-type]


@pytest.mark.parametrize("native", [True, False])
def test_auto_prefers_bf16_only_for_bulk_encoding_on_native_hardware(
    exported,
    native: bool,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    _, report = exported
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    bulk = Encoder(str(report.directory), backend="auto", bulk=True)
    assert (bulk.backend, bulk.batch_size) == (("torch-bf16", 128) if native else ("onnx", 32))
    query = Encoder(str(report.directory), backend="auto")
    assert (query.backend, query.batch_size) == ("onnx", 32)  # one short query at a time: onnx stays fastest
    assert Encoder(str(report.directory), backend="torch-bf16", batch_size=16).batch_size == 16


def test_a_torch_without_the_bf16_probes_or_a_device_other_than_cpu_and_cuda_reads_as_not_native(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert not native_bf16("mps")  # the CPU's probes say nothing about another device
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    assert not native_bf16("cpu")


@pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2, reason="needs CPU affinity and 2+ cores"
)
def test_the_onnx_backend_stays_on_the_cores_it_was_given(exported) -> None:  # type: ignore[no-untyped-def]
    """onnxruntime pins a thread to every core of the machine unless told its thread count: an encoder started
    with `taskset -c 0` beside a node on the other cores would compute on them too."""
    _, report = exported
    script = (
        "import os, sys; os.sched_setaffinity(0, {0})\n"
        "from tbhns_opensearch.encoder import Encoder\n"
        "encoder = Encoder(sys.argv[1], backend='onnx')\n"
        "encoder.encode(['cordless drill'] * 64)\n"
        "tasks = os.listdir(f'/proc/{os.getpid()}/task')\n"
        "print(sorted({core for task in tasks for core in os.sched_getaffinity(int(task))}))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(report.directory)], capture_output=True, text=True, check=True, timeout=300
    )
    assert run.stdout.strip().splitlines()[-1] == "[0]"
