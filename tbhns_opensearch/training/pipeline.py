"""One entry for a whole training run, used by `tbhns train` and the scripts alike: train, then write the model
folder with its ONNX export (parity-checked), manifest, model card and the split it was validated on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tbhns_opensearch.config import OpenSearchConfig
from tbhns_opensearch.encoder.export import ExportReport, export_model, record_int8_gate
from tbhns_opensearch.eval.splits import write_split
from tbhns_opensearch.training.card import model_card, write_model_card
from tbhns_opensearch.training.config import TrainConfig
from tbhns_opensearch.training.data import TrainingData, sample_texts
from tbhns_opensearch.training.distributed import barrier, finish
from tbhns_opensearch.training.int8_gate import measure_int8_gate
from tbhns_opensearch.training.personalization import train_personalization
from tbhns_opensearch.training.trainer import TrainResult, train
from tbhns_opensearch.users.attention import USER_MODEL_DIR, delete_user_model

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class TrainedModel:
    """A finished run and the folder it was written to."""

    result: TrainResult
    export: ExportReport
    directory: Path
    user_model: dict[str, Any] | None = None  # the manifest entry of the user model, with [personalization]


def train_and_export(
    config: TrainConfig,
    *,
    data: TrainingData | None = None,
    base_vectors: np.ndarray | None = None,
    opensearch: OpenSearchConfig | None = None,
    resume: bool = False,
) -> TrainedModel | None:
    """Train `config` (see `trainer.train` for `data`, `base_vectors`, `opensearch` and `resume`) and write
    `config.output_dir`: sentence-transformers files, `onnx/`, `tbhns_manifest.json`, the model card and
    `split.json` (which `tbhns bench` reads with `split_file`); with `[personalization]`, the user model
    trained on the exported encoder's vectors in `user_model/` (`personalization.train_personalization`).
    In a distributed run only rank 0 writes, while the others wait for it; they return None.

    Example:
        >>> train_and_export(load_train_config("training/icecat-taxonomy.toml")).directory  # doctest: +SKIP
        PosixPath('runs/train/icecat-taxonomy')
    """
    result = train(config, data=data, base_vectors=base_vectors, opensearch=opensearch, resume=resume)
    if result is None:  # another process of a distributed run: rank 0 writes the model
        barrier()
        finish()
        return None
    directory = Path(config.output_dir)
    report = export_model(
        result.model,
        directory,
        base_model=config.base_model,
        sample_texts=sample_texts(result.data),
        quantize=config.quantize,
    )
    if report.quantized is not None:
        gate = measure_int8_gate(
            directory,
            result.data.validation,
            result.data.products,
            result.metrics,
            config.int8_tolerance,
            seed=config.seed,
        )
        report = record_int8_gate(report, config.base_model, gate.to_dict())
    user_model = None
    if config.personalization:
        user_model = train_personalization(config, directory)
    else:  # a user model an earlier run left here was trained on other vectors: never serve it with this encoder
        delete_user_model(directory / USER_MODEL_DIR)
    write_model_card(directory, model_card(result, report, user_model))
    write_split(directory, result.data.split_of)
    barrier()  # the other processes of a distributed run exit once the model is written
    finish()
    return TrainedModel(result, report, directory, user_model)
