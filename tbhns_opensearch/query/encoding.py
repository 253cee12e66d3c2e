"""Query encoding with the product encoder, and a bounded LRU cache of query vectors.

Queries go through the same `Encoder` (and so the same normalization) as products at ingest. The backend
defaults to onnxruntime when the encoder directory carries an ONNX export (`onnx/model.onnx`, written by
`tbhns train`), torch otherwise; pass `backend` to force one. Repeated queries are served from an LRU cache
of at most `cache_size` vectors; the cache is safe to share between threads.

Example:
    >>> encoder = QueryEncoder("all-MiniLM-L6-v2", cache_size=2)  # loads nothing yet
    >>> encoder.encode("usb cable").shape  # doctest: +SKIP
    (384,)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from tbhns_opensearch.encoder import DEFAULT_ENCODER, Encoder
from tbhns_opensearch.errors import EncoderError


@dataclass(frozen=True)
class CacheInfo:
    """Query-vector cache counters."""

    hits: int
    misses: int
    size: int
    capacity: int


class QueryEncoder:
    """Encode query texts to unit vectors (dim,), caching the most recent `cache_size` of them.

    Args:
        encoder: An `Encoder`, or the model path/name to load one from on first use.
        backend: Encoder backend when `encoder` is a path ("torch", "onnx", ...); None means "auto" (onnx
            when the directory has an export).
        device: Device when `encoder` is a path.
        cache_size: Most vectors kept; 0 disables the cache.
    """

    def __init__(
        self,
        encoder: str | Encoder = DEFAULT_ENCODER,
        backend: str | None = None,
        device: str = "cpu",
        cache_size: int = 4096,
    ) -> None:
        if cache_size < 0:
            raise EncoderError(f"cache_size must be >= 0 (0 disables the cache), got {cache_size}")
        self._source = encoder
        self._backend = backend
        self._device = device
        self.capacity = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = self._misses = 0

    @cached_property
    def encoder(self) -> Encoder:
        """The underlying `Encoder` (constructed on first use; its model loads on the first encode)."""
        if isinstance(self._source, Encoder):
            return self._source
        return Encoder(self._source, device=self._device, backend=self._backend or "auto")

    @property
    def name(self) -> str:
        return self._source.name_or_path if isinstance(self._source, Encoder) else self._source

    @property
    def loaded(self) -> bool:
        """True once the model is in memory."""
        return "encoder" in self.__dict__ and "runtime" in self.encoder.__dict__

    def encode(self, text: str) -> np.ndarray:
        """The unit vector of `text`, shape (dim,); read-only, shared with the cache."""
        with self._lock:
            vector = self._cache.get(text)
            if vector is not None:
                self._cache.move_to_end(text)
                self._hits += 1
                return vector
            self._misses += 1
        vector = self.encoder.encode([text])[0]  # (dim,)
        vector.setflags(write=False)
        if self.capacity:
            with self._lock:
                self._cache[text] = vector
                self._cache.move_to_end(text)
                while len(self._cache) > self.capacity:
                    self._cache.popitem(last=False)
        return vector

    def cache_info(self) -> CacheInfo:
        with self._lock:
            return CacheInfo(self._hits, self._misses, len(self._cache), self.capacity)
