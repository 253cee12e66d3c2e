"""Training the user model (`users.attention`) contrastively on order sequences, product vectors frozen.

Examples (`order_queries`): for every user of the training split, every order with at least one older order
is a target in turn; each aisle of a product in that order is a query (derived from the category, not typed),
its history is every older order (recency counted from that order). An epoch draws, per example, one product
of the order in that aisle as the positive, and `TaxonomyNegatives` draws TB-HNS negatives from the department
> aisle taxonomy: `same_aisle` products of the query's aisle and `sibling_aisles` of other aisles of the same
department, never a product of the target order. The loss is softmax cross-entropy at temperature `tau` over
[the other examples' positives (in-batch; a positive that is in this example's target order is masked) + the
example's own TB-HNS negatives]. Every draw is keyed by (seed, epoch, example index), so a run repeats exactly.

The epoch kept is the best on validation users (their last order, the evaluation protocol), by
`select_metric` of `eval.metrics`; epoch 0 is the untrained model, kept if training never beats it.

Example:
    >>> trained = train_user_model(train_queries, validation_queries, space, AttentionTrainConfig())  # doctest: +SKIP
    >>> [(e.epoch, round(e.loss, 3), round(e.validation["recall@24"], 3)) for e in trained.log]  # doctest: +SKIP
    [(0, nan, 0.643), (1, 1.921, 0.75), ...]
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from tbhns_opensearch.catalog.product import Product
from tbhns_opensearch.errors import PersonalizationError
from tbhns_opensearch.eval.metrics import Evaluation, MetricConfig, evaluate
from tbhns_opensearch.eval.runs import Run
from tbhns_opensearch.taxonomy import NodePath, Taxonomy
from tbhns_opensearch.users.attention import (
    UserAttention,
    UserAttentionConfig,
    history_tensors,
    personalize_queries,
)
from tbhns_opensearch.users.sequences import QUERY_FORMS, SequenceUser

METRICS = MetricConfig(recall_ks=(10, 24, 100), ndcg_k=10)
"""Recall@10/24/100 and NDCG@10 (binary relevance: every product of the order in the aisle has grade 1)."""


@dataclass(frozen=True, eq=False)
class ProductSpace:
    """The products a model ranks: ids, frozen unit vectors, query vectors, and their department > aisle tree.

    Args:
        products: The products, in the row order of `matrix`.
        matrix: (n_products, dim) unit product vectors.
        query_vectors: Query text (an aisle, or department > aisle) -> unit vector (dim,).
    """

    products: tuple[Product, ...]
    matrix: np.ndarray  # (n_products, dim)
    query_vectors: Mapping[str, np.ndarray]
    taxonomy: Taxonomy = field(init=False)
    row_of: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        if len(self.products) != len(self.matrix):
            raise PersonalizationError(
                f"{len(self.products)} products for {len(self.matrix)} vectors; give one "
                "vector per product, in the same order"
            )
        object.__setattr__(self, "taxonomy", Taxonomy.from_products(self.products))
        object.__setattr__(self, "row_of", {p.id: i for i, p in enumerate(self.products)})

    @property
    def ids(self) -> list[str]:
        return [p.id for p in self.products]

    def query_matrix(self, queries: Sequence[OrderQuery]) -> np.ndarray:
        """(n, dim) float32 vectors of the queries' texts."""
        missing = sorted({q.text for q in queries} - set(self.query_vectors))
        if missing:
            raise PersonalizationError(
                f"no vector for query texts {missing[:5]}; encode every aisle text "
                "(and department > aisle) into ProductSpace.query_vectors"
            )
        return (
            np.stack([np.asarray(self.query_vectors[q.text], dtype=np.float32) for q in queries])
            if queries
            else np.zeros((0, self.matrix.shape[1]), dtype=np.float32)
        )


@dataclass(frozen=True)
class OrderQuery:
    """One (user, target order, aisle) query, with product rows of a `ProductSpace`.

    Args:
        user_id: The user.
        target: The target's orders before the user's last order (0 = the last order itself).
        text: The aisle, or department > aisle (derived from the category).
        relevant: Rows of the target order's products in that aisle.
        order: Rows of every product of the target order (never a negative).
        history: (row, orders before the target), most recent first; never a line of the target order.
        history_orders: Orders before the target (with or without named products).
    """

    user_id: str
    target: int
    text: str
    relevant: frozenset[int]
    order: frozenset[int]
    history: tuple[tuple[int, int], ...]
    history_orders: int

    @property
    def qid(self) -> str:
        return f"{self.user_id}/{self.target}/{self.text}"


def order_queries(
    users: Sequence[SequenceUser], space: ProductSpace, *, form: str = "aisle", every_order: bool = False
) -> list[OrderQuery]:
    """The queries of each user's last order (`every_order=False`, the evaluation protocol) or of every order
    with at least one older order (`every_order=True`, training examples). Products `space` lacks are left
    out; a user's queries come by target (last order first), then text.

    Example:
        >>> queries = order_queries(select_users(data.users, "validation"), space)  # doctest: +SKIP
    """
    if form not in QUERY_FORMS:
        raise PersonalizationError(f"query form {form!r} is unknown; use one of {', '.join(QUERY_FORMS)}")
    text_of = {row: QUERY_FORMS[form](p.taxonomy_path) for row, p in enumerate(space.products) if p.taxonomy_path}
    out = []
    for user in users:
        orders: dict[int, list[int]] = defaultdict(list)  # orders before the last -> rows, add-to-cart order
        orders[0] = [space.row_of[p] for p in user.targets if p in space.row_of]
        for purchase in user.history:
            if purchase.product_id in space.row_of:
                orders[purchase.orders_before].append(space.row_of[purchase.product_id])
        targets = sorted(t for t in orders if any(o > t for o in orders)) if every_order else [0]
        for target in targets:
            history = tuple(
                (row, before - target) for before in sorted(o for o in orders if o > target) for row in orders[before]
            )
            by_text: dict[str, set[int]] = defaultdict(set)
            for row in orders[target]:
                if row in text_of:
                    by_text[text_of[row]].add(row)
            out += [
                OrderQuery(
                    user.user_id,
                    target,
                    text,
                    frozenset(rows),
                    frozenset(orders[target]),
                    history,
                    user.history_orders - target,
                )
                for text, rows in sorted(by_text.items())
            ]
    return out


class TaxonomyNegatives:
    """TB-HNS negatives for a positive product: products of its aisle, and of the other aisles of its
    department (the taxonomy's siblings), never a product of the target order.

    A same-aisle draw is uniform over the aisle's products outside the order; a sibling draw picks a sibling
    aisle uniformly, then a product of it outside the order. An aisle with nothing outside the order passes
    its draw on: same aisle -> a sibling aisle -> any product outside the order.

    Args:
        space: The products and their taxonomy.
        same_aisle: Negatives drawn from the positive's aisle.
        sibling_aisles: Negatives drawn from sibling aisles.
    """

    def __init__(self, space: ProductSpace, same_aisle: int = 8, sibling_aisles: int = 4) -> None:
        if same_aisle < 0 or sibling_aisles < 0:
            raise PersonalizationError(
                f"same_aisle and sibling_aisles must be >= 0, got {same_aisle}, {sibling_aisles}"
            )
        self.same_aisle, self.sibling_aisles = same_aisle, sibling_aisles
        tree = space.taxonomy
        self._leaf = [tree.leaf_of(p.id) for p in space.products]
        self._rows = {
            node: np.array([space.row_of[p] for p in tree.products_under(node)], dtype=np.int64) for node in tree.nodes
        }
        self._siblings = {leaf: [s for s in tree.siblings(leaf) if len(self._rows[s])] for leaf in set(self._leaf)}

    @property
    def count(self) -> int:
        return self.same_aisle + self.sibling_aisles

    def sample(self, positive: int, order: frozenset[int], rng: np.random.Generator) -> list[int]:
        """`count` product rows (repeats possible), none in `order`: `same_aisle` from the positive's aisle,
        then `sibling_aisles` from sibling aisles.

        Example:
            >>> TaxonomyNegatives(space, 2, 1).sample(0, frozenset({0}), np.random.default_rng(0))  # doctest: +SKIP
            [3, 1, 7]
        """
        leaf = self._leaf[positive]
        same = [self._draw(self._rows[leaf], order, rng) for _ in range(self.same_aisle)]
        return [self._sibling(leaf, order, rng) if row is None else row for row in same] + [
            self._sibling(leaf, order, rng) for _ in range(self.sibling_aisles)
        ]

    def _sibling(self, leaf: NodePath, order: frozenset[int], rng: np.random.Generator) -> int:
        siblings = self._siblings[leaf]
        for index in rng.permutation(len(siblings)):
            row = self._draw(self._rows[siblings[index]], order, rng)
            if row is not None:
                return row
        row = self._draw(self._rows[()], order, rng)
        if row is None:
            raise PersonalizationError(f"a target order holds every product ({len(order)}); no negative can be drawn")
        return row

    @staticmethod
    def _draw(rows: np.ndarray, order: frozenset[int], rng: np.random.Generator) -> int | None:
        """A row of `rows` outside `order`, uniformly (rejection, then the exact rest); None if there is none."""
        for _ in range(8):
            row = int(rows[rng.integers(len(rows))])
            if row not in order:
                return row
        rest = [int(r) for r in rows if int(r) not in order]
        return rest[rng.integers(len(rest))] if rest else None


def draw_examples(
    examples: Sequence[OrderQuery], indices: Sequence[int], negatives: TaxonomyNegatives, *, seed: int, epoch: int
) -> tuple[np.ndarray, np.ndarray]:
    """The positive (one relevant product) and TB-HNS negatives of each chosen example for one epoch,
    keyed by (seed, epoch, example index).

    Returns:
        positives (batch,) and negatives (batch, negatives.count), product rows.
    """
    positives = np.zeros(len(indices), dtype=np.int64)
    drawn = np.zeros((len(indices), negatives.count), dtype=np.int64)
    for i, index in enumerate(indices):
        example = examples[index]
        rng = np.random.default_rng((seed, epoch, int(index)))
        relevant = sorted(example.relevant)
        positives[i] = relevant[rng.integers(len(relevant))]
        drawn[i] = negatives.sample(int(positives[i]), example.order, rng)
    return positives, drawn


@dataclass(frozen=True)
class AttentionTrainConfig:
    """How the user model is trained.

    Args:
        epochs: Passes over the training examples (the best on validation, or the untrained model, is kept).
        batch_size: Examples per step; the other examples' positives are in-batch negatives.
        learning_rate: Adam's.
        temperature: Softmax temperature tau of the contrastive loss.
        same_aisle: TB-HNS negatives per example from the positive's aisle.
        sibling_aisles: TB-HNS negatives per example from other aisles of its department.
        select_metric: Validation metric that picks the epoch (a name of `METRICS`).
        seed: Seeds the initial weights, the shuffles and every draw.
        device: Torch device ("cpu", "cuda").
        model: Shape and initialisation of the user model.
    """

    epochs: int = 6
    batch_size: int = 256
    learning_rate: float = 1e-3
    temperature: float = 0.05
    same_aisle: int = 8
    sibling_aisles: int = 4
    select_metric: str = "recall@24"
    seed: int = 0
    device: str = "cpu"
    model: UserAttentionConfig = field(default_factory=UserAttentionConfig)

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 2:
            raise PersonalizationError(f"need epochs >= 0 and batch_size >= 2, got {self.epochs}, {self.batch_size}")
        if not (self.learning_rate > 0 and self.temperature > 0):
            raise PersonalizationError(
                f"learning_rate and temperature must be positive, got {self.learning_rate}, {self.temperature}"
            )
        if self.select_metric not in METRICS.names:
            raise PersonalizationError(
                f"select_metric {self.select_metric!r} is unknown; use one of {', '.join(METRICS.names)}"
            )


@dataclass(frozen=True)
class EpochLog:
    """One epoch: mean training loss (nan for epoch 0, the untrained model), validation means, seconds."""

    epoch: int
    loss: float
    validation: dict[str, float]
    seconds: float


@dataclass(frozen=True, eq=False)
class TrainedUserModel:
    """The model of the best validation epoch, and the log of every epoch."""

    model: UserAttention
    best_epoch: int
    log: tuple[EpochLog, ...]
    train_examples: int

    @property
    def train_seconds(self) -> float:
        return sum(entry.seconds for entry in self.log if entry.epoch > 0)


def run_epoch(
    model: UserAttention,
    examples: Sequence[OrderQuery],
    space: ProductSpace,
    negatives: TaxonomyNegatives,
    config: AttentionTrainConfig,
    *,
    seed: int,
    epoch: int,
    optimizer: torch.optim.Optimizer | None = None,
) -> float:
    """Mean contrastive loss over one seeded pass; with `optimizer`, a training step per batch.

    Without an optimizer nothing changes (no gradients), so the loss of two models, or of one model before
    and after training, can be compared on the very same draws.
    """
    device = next(model.parameters()).device
    matrix = torch.from_numpy(np.ascontiguousarray(space.matrix, dtype=np.float32)).to(device)  # (n_products, dim)
    queries = torch.from_numpy(space.query_matrix(examples)).to(device)  # (n_examples, dim)
    order = np.random.default_rng((seed, epoch)).permutation(len(examples))
    model.train(optimizer is not None)
    total, batches = 0.0, 0
    with torch.set_grad_enabled(optimizer is not None):
        for start in range(0, len(order), config.batch_size):
            chosen = order[start : start + config.batch_size]
            loss = _batch_loss(model, examples, chosen, queries, matrix, negatives, config, seed=seed, epoch=epoch)
            if optimizer is not None:
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            total, batches = total + loss.item(), batches + 1
    model.eval()
    return total / max(batches, 1)


def _batch_loss(
    model: UserAttention,
    examples: Sequence[OrderQuery],
    chosen: np.ndarray,
    queries: torch.Tensor,
    matrix: torch.Tensor,
    negatives: TaxonomyNegatives,
    config: AttentionTrainConfig,
    *,
    seed: int,
    epoch: int,
) -> torch.Tensor:
    """Softmax cross-entropy of the chosen examples over [in-batch positives, own TB-HNS negatives]."""
    device, batch = matrix.device, [examples[i] for i in chosen]
    positives, hard = draw_examples(examples, chosen, negatives, seed=seed, epoch=epoch)
    history, buckets, mask = (
        t.to(device) for t in history_tensors([e.history for e in batch], matrix, model.config.max_history)
    )
    personal = model(queries[torch.from_numpy(chosen).to(device)], history, buckets, mask)  # (batch, dim)
    positive_rows = torch.from_numpy(positives).to(device)
    in_batch = personal @ matrix[positive_rows].T  # (batch, batch); the diagonal is each example's positive
    in_order = torch.zeros(len(batch), len(matrix), dtype=torch.bool)  # (batch, n_products)
    for i, example in enumerate(batch):
        in_order[i, list(example.order)] = True
    masked = in_order.to(device)[:, positive_rows] & ~torch.eye(len(batch), dtype=torch.bool, device=device)
    logits = [in_batch.masked_fill(masked, float("-inf"))]
    if negatives.count:
        logits.append(torch.einsum("bd,bnd->bn", personal, matrix[torch.from_numpy(hard).to(device)]))  # (batch, n)
    target = torch.arange(len(batch), device=device)
    return F.cross_entropy(torch.cat(logits, dim=1) / config.temperature, target)


def exact_run(vectors: np.ndarray, qids: Sequence[str], space: ProductSpace, k: int = 100) -> Run:
    """Exact cosine top `k` of each query vector over `space`: qid -> {product id: score}.

    Example:
        >>> run = exact_run(np.float32([[1, 0]]), ["q"], space, k=1)  # doctest: +SKIP
    """
    ids, out = space.ids, {}
    k = min(k, len(ids))
    for start in range(0, len(qids), 1024):
        scores = vectors[start : start + 1024] @ space.matrix.T  # (chunk, n_products)
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # (chunk, k), unordered
        for row, columns in enumerate(top):
            out[qids[start + row]] = {ids[c]: float(scores[row, c]) for c in columns}
    return out


def qrels_of(queries: Sequence[OrderQuery], space: ProductSpace) -> dict[str, dict[str, int]]:
    """qid -> {relevant product id: 1}."""
    return {q.qid: {space.products[row].id: 1 for row in q.relevant} for q in queries}


def evaluate_model(model: UserAttention | None, queries: Sequence[OrderQuery], space: ProductSpace) -> Evaluation:
    """Recall@10/24/100 and NDCG@10 of exact search with the model's vectors (None: the plain query)."""
    vectors = space.query_matrix(queries)
    if model is not None:
        vectors = personalize_queries(model, vectors, [q.history for q in queries], space.matrix)
    return evaluate(exact_run(vectors, [q.qid for q in queries], space), qrels_of(queries, space), METRICS)


def train_user_model(
    train: Sequence[OrderQuery],
    validation: Sequence[OrderQuery],
    space: ProductSpace,
    config: AttentionTrainConfig,
    progress: Callable[[EpochLog], None] | None = None,
) -> TrainedUserModel:
    """Train a `UserAttention` on `train` examples, keeping the epoch best on `validation` queries.

    Args:
        train: Training examples (`order_queries(train_users, space, every_order=True)`).
        validation: Validation queries (`order_queries(validation_users, space)`).
        space: Product vectors (frozen), query vectors, taxonomy.
        config: Epochs, batch, loss, negatives, seed, device.
        progress: Called with each epoch's log as it ends (epoch 0: the untrained model).
    """
    if not train or not validation:
        raise PersonalizationError(
            f"training needs examples and validation queries, got {len(train)} and "
            f"{len(validation)}; check the split and the query form"
        )
    dim = space.matrix.shape[1]
    if config.model.dim != dim:
        raise PersonalizationError(
            f"model dim {config.model.dim} differs from the product vectors' {dim}; set "
            "AttentionTrainConfig.model.dim to the encoder's dimension"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = UserAttention(config.model).to(config.device)
    negatives = TaxonomyNegatives(space, config.same_aisle, config.sibling_aisles)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    log = [EpochLog(0, math.nan, _validate(model, validation, space), 0.0)]
    best = (log[0].validation[config.select_metric], 0, _copy_state(model))
    if progress is not None:
        progress(log[0])
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        loss = run_epoch(model, train, space, negatives, config, seed=config.seed, epoch=epoch, optimizer=optimizer)
        seconds = time.perf_counter() - started
        log.append(EpochLog(epoch, loss, _validate(model, validation, space), seconds))
        if progress is not None:
            progress(log[-1])
        if log[-1].validation[config.select_metric] > best[0]:
            best = (log[-1].validation[config.select_metric], epoch, _copy_state(model))
    model.load_state_dict(best[2])
    return TrainedUserModel(model.cpu().eval(), best[1], tuple(log), len(train))


def _validate(model: UserAttention, validation: Sequence[OrderQuery], space: ProductSpace) -> dict[str, float]:
    return dict(evaluate_model(model, validation, space).mean)


def _copy_state(model: UserAttention) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
