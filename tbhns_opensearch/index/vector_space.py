"""Which vector space an index's vectors are in, so vectors of two encoders are never mixed or compared.

An encoder's *signature* is its unit vectors of a few fixed probe texts (`PROBE_TEXTS`), base64 float32. `tbhns
ingest` stores it in the product index's `_meta` (`SIGNATURE`); every user profile built from that index's vectors
stores its short id (`space_id`). Two encoders share a space when every probe's two vectors have cosine >=
`MIN_COSINE`: a copy of a model folder, its ONNX export and a bf16 run of it do (> 0.999); a fine-tuned model,
another base model or a permuted one do not (0.87-0.96 between MiniLM and two Instacart fine-tunes of it). A
rebuilt index whose encoder shares the previous index's space keeps the previous signature (`carried_signature`),
so the profiles' ids stay valid across rebuilds with the same model.

Example:
    >>> probes = np.eye(len(PROBE_TEXTS), 4, dtype=np.float32)  # (probes, dim) unit vectors
    >>> same_space(signature_of_vectors(probes), signature_of_vectors(probes[:, ::-1])), same_space(
    ...     signature_of_vectors(probes), signature_of_vectors(probes * 1.0000001))
    (False, True)
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np

from tbhns_opensearch.index.documents import decode_vector, vector_bytes

if TYPE_CHECKING:
    from tbhns_opensearch.encoder import Encoder

SIGNATURE = "encoder_signature"  # key in the product index mapping's _meta
MIN_COSINE = 0.98
PROBE_TEXTS = (
    "usb-c charging cable 2 m",
    "Organic whole milk, 1 gallon",
    "Cordless drill driver with two 18 V batteries, a charger and a carry case for wood, metal and masonry",
)


def encoder_signature(encoder: Encoder) -> str:
    """`encoder`'s vectors of `PROBE_TEXTS`, (probes, dim) float32 row-major, base64.

    Example:
        >>> len(encoder_signature(Encoder()))  # 3 x 384 float32, base64  # doctest: +SKIP
        6144
    """
    return signature_of_vectors(encoder.encode(list(PROBE_TEXTS)))


def signature_of_vectors(vectors: np.ndarray) -> str:
    """The signature of the probes' (probes, dim) unit vectors."""
    return vector_bytes(np.asarray(vectors, dtype=np.float32).ravel())


def same_space(first: str, second: str) -> bool:
    """Whether two signatures come from encoders whose vectors can be mixed: the same shape, and each probe's
    two vectors at cosine >= `MIN_COSINE`."""
    a, b = decode_vector(first), decode_vector(second)
    if a.shape != b.shape or a.size % len(PROBE_TEXTS):
        return False
    rows = len(PROBE_TEXTS)
    return bool((np.sum(a.reshape(rows, -1) * b.reshape(rows, -1), axis=1) >= MIN_COSINE).all())


def carried_signature(new: str, previous: str | None) -> str:
    """The signature a rebuilt index stores: the `previous` index's, when `new` shares its space, else `new`.

    Example:
        >>> probes = np.eye(len(PROBE_TEXTS), 4, dtype=np.float32)
        >>> old, near = signature_of_vectors(probes), signature_of_vectors(probes + 0.001)
        >>> carried_signature(near, old) == old, carried_signature(near, None) == near
        (True, True)
    """
    return previous if previous is not None and same_space(new, previous) else new


def space_id(signature: str | None) -> str | None:
    """A short id of the space `signature` names (what a user profile stores), None for an unknown space.

    Example:
        >>> len(space_id(signature_of_vectors(np.eye(len(PROBE_TEXTS), dtype=np.float32)))), space_id(None)
        (16, None)
    """
    return None if signature is None else hashlib.sha256(signature.encode("ascii")).hexdigest()[:16]


def signature_in(meta: dict[str, Any]) -> str | None:
    """The signature in an index mapping's `_meta`, None where it stores none (filled by a cluster pipeline, or by
    a version before signatures).

    Example:
        >>> signature_in({"catalog_fingerprint": "9f2c"}) is None
        True
    """
    value = meta.get(SIGNATURE)
    return value if isinstance(value, str) else None
