"""A learned, query-aware user model: attention over the user's last purchases, with a zero slot (ZAM).

The fixed blend (`users.blend`) moves every query by the same share towards one user vector. This model
learns which past purchases matter for *this* query, and whether to personalize at all (ZAM, Ai et al.,
CIKM 2019: attention over the history plus a zero vector):

    logit_i = s * (q . h_i) + (A q) . (B h_i) / sqrt(k) + r[bucket(orders_before_i)]    (history slot i)
    logit_0 = v . q + c                                                                  (zero slot)
    w       = softmax(logit_0, logit_1 .. logit_N)
    q'      = normalize(q + W sum_i w_i h_i)                                             (the zero slot adds 0)

`q` is the unit query vector, `h_i` the unit vectors of the last `max_history` purchased products (most
recent first), `A`, `B` small projections (dim -> k), `r` a bias per recency bucket (`recency_bucket`), `W`
a (dim, dim) matrix initialised to the identity. All weight on the zero slot gives the plain query exactly
(bit for bit: the query is returned, not renormalized); an empty history does too. Why this shape: the scaled
cosine `s (q . h)` lets an untrained model already prefer past purchases close to the query (re-finding
products bought before is most of the gain on grocery histories); the projections learn query-specific
relevance on top; the residual `q + W a` keeps the query in charge, and `W = I` starts as a plain sum.

Weights are stored as safetensors (`user_model.safetensors`) beside a JSON config (`user_model.json`):
no pickle. A model trained for an encoder lives in `<encoder dir>/user_model/` (`user_model_beside`); at
query time `UserAttention.at_query_time` copies its weights into numpy, for one query at a time.

Example:
    >>> import torch
    >>> model = UserAttention(UserAttentionConfig(dim=4, key_dim=2))
    >>> q = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    >>> history, buckets, mask = history_tensors([[]], torch.eye(4), max_history=3)
    >>> torch.equal(model(q, history, buckets, mask), q)
    True
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tbhns_opensearch.config import is_count
from tbhns_opensearch.encoder import resolve_model_path
from tbhns_opensearch.errors import PersonalizationError
from tbhns_opensearch.users.profiles import UserHistory

RECENCY_EDGES = (1, 2, 3, 5, 9, 17, 33)
"""Lower bounds (in orders before the target) of the recency buckets: 1, 2, 3-4, 5-8, 9-16, 17-32, 33+."""
_EDGES = np.asarray(RECENCY_EDGES)
CONFIG_FILE = "user_model.json"
WEIGHTS_FILE = "user_model.safetensors"
FORMAT = "tbhns-user-attention/1"
USER_MODEL_DIR = "user_model"
"""The folder of an encoder directory holding the user model trained for that encoder."""

HistoryRows = Sequence[tuple[int, int]]
"""A history as (row of the product matrix, orders before the target), most recent first."""


def recency_bucket(orders_before: int) -> int:
    """The recency bucket of a purchase made `orders_before` orders before the target (1 = the order just
    before it): buckets 0..6 are 1, 2, 3-4, 5-8, 9-16, 17-32 and 33+ orders.

    Example:
        >>> [recency_bucket(n) for n in (1, 2, 3, 4, 5, 8, 9, 16, 17, 32, 33, 500)]
        [0, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6]
    """
    if not is_count(int(orders_before) if isinstance(orders_before, np.integer) else orders_before, minimum=1):
        raise PersonalizationError(
            f"orders_before must be an integer >= 1 (1 = the order just before the target), got {orders_before!r}"
        )
    return sum(orders_before >= edge for edge in RECENCY_EDGES) - 1


@dataclass(frozen=True)
class UserAttentionConfig:
    """Shape and initialisation of a `UserAttention` model (stored as JSON beside the weights).

    Args:
        dim: Dimension of the query and product vectors (the encoder's).
        key_dim: Dimension k of the learned query and history projections.
        max_history: Purchases attended to, the most recent first.
        sim_scale: Initial scale s of the cosine term (10: an untrained model already prefers close purchases).
        zero_bias: Initial bias c of the zero slot's logit (5: an untrained model personalizes only when a
            past purchase is close to the query).
    """

    dim: int = 384
    key_dim: int = 32
    max_history: int = 50
    sim_scale: float = 10.0
    zero_bias: float = 5.0

    def __post_init__(self) -> None:
        for name in ("dim", "key_dim", "max_history"):
            value = getattr(self, name)
            if not is_count(value, minimum=1):
                raise PersonalizationError(f"UserAttentionConfig.{name} must be an integer >= 1, got {value!r}")
        for name in ("sim_scale", "zero_bias"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise PersonalizationError(f"UserAttentionConfig.{name} must be finite, got {value!r}")


class UserAttention(nn.Module):
    """q' = normalize(q + W sum_i w_i h_i), w = softmax over [zero slot, history] (module docstring).

    Args:
        config: Dimensions and initial values.
    """

    def __init__(self, config: UserAttentionConfig | None = None) -> None:
        super().__init__()
        self.config = config or UserAttentionConfig()
        dim, key_dim = self.config.dim, self.config.key_dim
        self.sim_scale = nn.Parameter(torch.tensor(float(self.config.sim_scale)))
        self.query_proj = nn.Linear(dim, key_dim, bias=False)  # A
        self.history_proj = nn.Linear(dim, key_dim, bias=False)  # B
        nn.init.normal_(self.query_proj.weight, std=0.01)
        nn.init.normal_(self.history_proj.weight, std=0.01)
        self.recency = nn.Embedding(len(RECENCY_EDGES), 1)  # r
        nn.init.zeros_(self.recency.weight)
        self.zero_slot = nn.Linear(dim, 1)  # v, c
        nn.init.zeros_(self.zero_slot.weight)
        nn.init.constant_(self.zero_slot.bias, float(self.config.zero_bias))
        self.combine = nn.Linear(dim, dim, bias=False)  # W
        with torch.no_grad():
            self.combine.weight.copy_(torch.eye(dim))

    def at_query_time(self) -> QueryTimeUserModel:
        """A copy of this model's weights in numpy, for one query at a time (`QueryTimeUserModel`)."""

        def copied(tensor: torch.Tensor) -> np.ndarray:
            return tensor.detach().cpu().numpy().copy()

        return QueryTimeUserModel(
            config=self.config,
            sim_scale=float(self.sim_scale.item()),
            query_proj=copied(self.query_proj.weight),
            history_proj=copied(self.history_proj.weight) / np.float32(math.sqrt(self.config.key_dim)),
            recency=copied(self.recency.weight[:, 0]),
            zero_weight=copied(self.zero_slot.weight[0]),
            zero_bias=float(self.zero_slot.bias.item()),
            combine=copied(self.combine.weight),
        )

    def attention(
        self, query: torch.Tensor, history: torch.Tensor, buckets: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Attention weights over [zero slot, history slots]; rows sum to 1, padded slots get 0.

        Args:
            query: (batch, dim) unit query vectors.
            history: (batch, n, dim) product vectors, most recent first, padded.
            buckets: (batch, n) recency buckets (`recency_bucket`); any value on padded slots.
            mask: (batch, n) True on real history slots.

        Returns:
            (batch, 1 + n): column 0 is the zero slot.
        """
        cosine = torch.einsum("bd,bnd->bn", query, history) * self.sim_scale  # (batch, n)
        learned = torch.einsum("bk,bnk->bn", self.query_proj(query), self.history_proj(history))  # (batch, n)
        logits = cosine + learned / math.sqrt(self.config.key_dim) + self.recency(buckets).squeeze(-1)  # (batch, n)
        logits = logits.masked_fill(~mask, float("-inf"))
        return torch.softmax(torch.cat([self.zero_slot(query), logits], dim=1), dim=1)  # (batch, 1 + n)

    def forward(
        self, query: torch.Tensor, history: torch.Tensor, buckets: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """The personalized unit query vectors, (batch, dim); arguments as in `attention`."""
        weights = self.attention(query, history, buckets, mask)  # (batch, 1 + n)
        attended = torch.einsum("bn,bnd->bd", weights[:, 1:], history)  # (batch, dim); the zero slot adds 0
        personal = F.normalize(query + self.combine(attended), dim=-1)  # (batch, dim)
        return torch.where(weights[:, :1] == 1.0, query, personal)  # all weight on the zero slot: q itself


def history_tensors(
    histories: Sequence[HistoryRows], product_matrix: torch.Tensor, max_history: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Padded model inputs for a batch of histories, each cut to its `max_history` most recent purchases.

    Args:
        histories: Per example, (product row, orders before the target) pairs, most recent first.
        product_matrix: (n_products, dim) unit product vectors, on any device.
        max_history: Slots per example.

    Returns:
        history (batch, max_history, dim) on the matrix's device; buckets (batch, max_history) long and mask
        (batch, max_history) bool, on the CPU.

    Example:
        >>> h, b, m = history_tensors([[(1, 3)], []], torch.eye(2), max_history=2)
        >>> h[0, 0].tolist(), b.tolist(), m.tolist()
        ([0.0, 1.0], [[2, 0], [0, 0]], [[True, False], [False, False]])
    """
    rows = np.zeros((len(histories), max_history), dtype=np.int64)
    buckets = np.zeros((len(histories), max_history), dtype=np.int64)
    mask = np.zeros((len(histories), max_history), dtype=bool)
    for i, history in enumerate(histories):
        kept = history[:max_history]
        for j, (row, orders_before) in enumerate(kept):
            rows[i, j], buckets[i, j] = row, recency_bucket(orders_before)
        mask[i, : len(kept)] = True
    history = product_matrix[torch.from_numpy(rows).to(product_matrix.device)]  # (batch, max_history, dim)
    return history, torch.from_numpy(buckets), torch.from_numpy(mask)


def personalize_queries(
    model: UserAttention,
    queries: np.ndarray,
    histories: Sequence[HistoryRows],
    product_matrix: np.ndarray,
    batch_size: int = 512,
) -> np.ndarray:
    """Personalized unit query vectors for many queries, without gradients.

    Args:
        model: The user model (put in eval mode here).
        queries: (n, dim) unit query vectors.
        histories: One history per query (`HistoryRows`).
        product_matrix: (n_products, dim) unit product vectors the history rows index.
        batch_size: Queries per forward pass.

    Returns:
        (n, dim) float32.

    Example:
        >>> model = UserAttention(UserAttentionConfig(dim=2, key_dim=1))
        >>> personalize_queries(model, np.float32([[1, 0]]), [[]], np.eye(2, dtype=np.float32)).tolist()
        [[1.0, 0.0]]
    """
    if len(queries) != len(histories):
        raise PersonalizationError(f"{len(queries)} query vectors for {len(histories)} histories; give one each")
    matrix = torch.from_numpy(np.ascontiguousarray(product_matrix, dtype=np.float32))
    device = next(model.parameters()).device
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(queries), batch_size):
            query = torch.from_numpy(np.ascontiguousarray(queries[start : start + batch_size], dtype=np.float32))
            tensors = history_tensors(histories[start : start + batch_size], matrix, model.config.max_history)
            out.append(model(query.to(device), *(t.to(device) for t in tensors)).cpu().numpy())  # (chunk, dim)
    return np.concatenate(out) if out else np.zeros((0, matrix.shape[1]), dtype=np.float32)


@dataclass(frozen=True, eq=False)
class QueryTimeUserModel:
    """A `UserAttention`'s weights in numpy for one query at a time (`UserAttention.at_query_time`), copied
    once per loaded model: the logits' query side is one key vector,
    s (q . h) + (A q) . (B h) / sqrt(k) = h . (s q + B^T (A q) / sqrt(k)), so a query pays the two small (k, dim)
    projections, two products with its history and one with W (~0.07 ms for 50 x 384), no torch dispatch."""

    config: UserAttentionConfig
    sim_scale: float  # s
    query_proj: np.ndarray  # (k, dim): A
    history_proj: np.ndarray  # (k, dim): B / sqrt(k)
    recency: np.ndarray  # (buckets,): r
    zero_weight: np.ndarray  # (dim,): v
    zero_bias: float  # c
    combine: np.ndarray  # (dim, dim): W

    def personalize(self, query: np.ndarray, history: UserHistory) -> tuple[np.ndarray, float]:
        """One query personalized with one stored history (the model's `forward` for a batch of one).

        Args:
            query: (dim,) unit query vector.
            history: The user's last products, most recent first; only the first `max_history` are used.

        Returns:
            The (dim,) float32 unit vector (`query` itself when all weight is on the zero slot or the history is
            empty) and the attention weight on the history (1 - the zero slot's).

        Example:
            >>> model = UserAttention(UserAttentionConfig(dim=2, key_dim=1, zero_bias=-30.0)).at_query_time()
            >>> vector, weight = model.personalize(np.float32([1, 0]), UserHistory(("p",), (1,), np.float32([[0, 1]])))
            >>> np.allclose(vector, [0.5**0.5, 0.5**0.5]), weight  # normalize(q + h): W = I at initialisation
            (True, 1.0)
        """
        dim, cut = self.config.dim, min(len(history), self.config.max_history)
        if query.shape != (dim,) or history.vectors.shape[1:] != (dim,):
            raise PersonalizationError(
                f"the user model takes {dim}-dimensional vectors, got a query of shape {query.shape} and stored "
                f"history vectors of {history.vectors.shape[1:]}; rebuild the users (`tbhns ingest-users --history`) "
                "with the encoder the product index was built with, and train the user model for that encoder"
            )
        if cut == 0:
            return query, 0.0
        q = np.asarray(query, dtype=np.float32)
        vectors = history.vectors[:cut]  # (n, dim)
        buckets = np.searchsorted(_EDGES, history.orders_before[:cut], side="right") - 1  # recency_bucket, (n,)
        logits = np.empty(1 + cut, dtype=np.float32)  # (1 + n,): the zero slot, then the history
        logits[0] = self.zero_weight @ q + self.zero_bias
        key = self.sim_scale * q + (self.query_proj @ q) @ self.history_proj  # (dim,)
        np.add(vectors @ key, self.recency[buckets], out=logits[1:])
        weights = np.exp(logits - logits.max())
        weights /= weights.sum()  # (1 + n,)
        if weights[0] == 1.0:
            return query, 0.0
        personal = q + self.combine @ (weights[1:] @ vectors)  # (dim,)
        return (personal / np.linalg.norm(personal)).astype(np.float32), float(1.0 - weights[0])


def user_model_beside(encoder: str) -> UserAttention | None:
    """The user model in the `USER_MODEL_DIR` folder of the encoder directory `encoder` (a path, or the
    default encoder's name), or None when there is none (a hub name, a directory without one).

    Example:
        >>> user_model_beside("all-MiniLM-L6-v2") is None
        True
    """
    directory = Path(resolve_model_path(encoder)) / USER_MODEL_DIR
    return load_user_model(directory) if (directory / CONFIG_FILE).is_file() else None


def stored_history_size(model: UserAttention | None) -> int:
    """How many of each user's last products to store (`PersonalizationConfig.history_size`) for searches with
    `model` (the user model beside the encoder, `user_model_beside`): its `max_history`, 0 without one (the
    blend reads no history).

    Example:
        >>> stored_history_size(None), stored_history_size(UserAttention(UserAttentionConfig(max_history=7)))
        (0, 7)
    """
    return 0 if model is None else model.config.max_history


def save_user_model(model: UserAttention, directory: str | Path) -> Path:
    """Write `user_model.json` (format and config) and `user_model.safetensors` (weights) into `directory`.

    Example:
        >>> save_user_model(UserAttention(), "models/user")  # doctest: +SKIP
        PosixPath('models/user')
    """
    save_file = _safetensors("save_file")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(
        {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()},
        str(directory / WEIGHTS_FILE),
    )
    (directory / CONFIG_FILE).write_text(json.dumps({"format": FORMAT, **asdict(model.config)}, indent=2) + "\n")
    return directory


def delete_user_model(directory: str | Path) -> None:
    """Remove the two files `save_user_model` writes into `directory`, and the folder once it is empty;
    anything else there is left alone.

    Example:
        >>> delete_user_model("runs/train/x/user_model")  # doctest: +SKIP
    """
    directory = Path(directory)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        (directory / name).unlink(missing_ok=True)
    if directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()


def load_user_model(directory: str | Path) -> UserAttention:
    """The model `save_user_model` wrote into `directory`, in eval mode.

    Example:
        >>> load_user_model("models/user").config.max_history  # doctest: +SKIP
        50
    """
    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    if not config_path.is_file() or not weights_path.is_file():
        raise PersonalizationError(
            f"{directory} lacks {CONFIG_FILE} or {WEIGHTS_FILE}; write a user model there "
            "with save_user_model (or train one)"
        )
    try:
        stored = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # unreadable, not UTF-8, not JSON: refused as not a config below
        stored = None
    if not isinstance(stored, dict) or stored.pop("format", None) != FORMAT:
        raise PersonalizationError(
            f"{config_path} is not a {FORMAT} config; train the user model again (`tbhns train` with a "
            "[personalization] table) or copy the whole user_model folder again"
        )
    known = {f.name for f in fields(UserAttentionConfig)}
    model = UserAttention(UserAttentionConfig(**{k: v for k, v in stored.items() if k in known}))
    load_file = _safetensors("load_file")
    from safetensors import SafetensorError

    try:
        model.load_state_dict(load_file(str(weights_path)))
    except (OSError, SafetensorError, RuntimeError) as exc:  # unreadable, truncated, weights of other shapes
        raise PersonalizationError(
            f"{weights_path} does not hold the weights of the model {config_path.name} describes "
            f"({str(exc).splitlines()[0][:200]}); train the user model again or copy the whole user_model folder "
            "again"
        ) from exc
    return model.eval()


def _safetensors(name: str) -> Callable[..., Any]:
    """safetensors.torch.save_file or load_file, imported when needed."""
    try:
        import safetensors.torch
    except ImportError as exc:  # pragma: no cover - installed with transformers
        raise PersonalizationError("saving or loading a user model needs safetensors: pip install safetensors") from exc
    return getattr(safetensors.torch, name)
