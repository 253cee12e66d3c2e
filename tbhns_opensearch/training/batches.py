"""Training rows (anchor, positive, negative_1..n) whose negatives are drawn by a sampler and can be refreshed.

The `datasets.Dataset` given to the trainer holds the query, the positive's text and a row number; a
transform adds the negatives' texts from the table when a batch is read. `refresh(epoch)` re-draws every
row's negatives: the trainer calls it at each epoch start (samplers rotate with the epoch) and, for
`ance`, after each re-mining. Every row has exactly `count` negatives, as the loss needs: a row the sampler
leaves short is filled with uniformly drawn catalog products that pass the same false-negative filter
(level "fill", counted in `fills`). With a `teacher` (`teacher.HybridTeacher`), each row also holds the
teacher's candidates (columns candidate_1..candidate_m, after the negatives) and its scores (column label),
re-drawn with the negatives.

Example:
    >>> from tbhns_opensearch.training.negatives import FalseNegativeFilter, get_sampler
    >>> products = [Product("p1", "Kite"), Product("p2", "Yo-yo"), Product("p3", "Ball")]
    >>> pairs = [TrainingPair("kite", "p1", frozenset({"p1"}), "generated")]
    >>> table = NegativeTable(pairs, products, get_sampler("random"), FalseNegativeFilter.from_products(products),
    ...                       count=1, seed=0)
    >>> table.refresh(epoch=0)
    >>> table.dataset()[0]["anchor"], table.fills
    ('kite', 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tbhns_opensearch.catalog import Product
from tbhns_opensearch.errors import TrainingError
from tbhns_opensearch.eval.queries import query_key
from tbhns_opensearch.seeding import keyed_rng
from tbhns_opensearch.training.examples import TrainingPair
from tbhns_opensearch.training.negatives import FalseNegativeFilter, NegativeSampler

if TYPE_CHECKING:
    from datasets import Dataset

    from tbhns_opensearch.training.experimental.teacher import HybridTeacher

_FILL_TRIES = 50  # random draws per missing negative before giving up


class NegativeTable:
    """The negatives of every training row, as product ids, re-drawn by `refresh`.

    Args:
        pairs: Training pairs, one row each.
        products: The catalog (texts of positives and negatives).
        sampler: Draws each row's negatives.
        false_negatives: Filter for the fill draws (the sampler filters its own).
        count: Negatives per row (0: in-batch negatives only).
        seed: Seeds the sampler and the fills.
        teacher: Draws each row's distillation candidates and their scores (None: no distillation columns).
    """

    def __init__(
        self,
        pairs: Sequence[TrainingPair],
        products: Sequence[Product],
        sampler: NegativeSampler,
        false_negatives: FalseNegativeFilter,
        count: int,
        seed: int,
        teacher: HybridTeacher | None = None,
    ) -> None:
        if not pairs:
            raise TrainingError("no training pairs: check the data config (queries, min_grade, splits)")
        self.pairs = tuple(pairs)
        self.texts = {p.id: p.text_for_embedding() for p in products}
        missing = sorted({p.positive_id for p in self.pairs} - set(self.texts))
        if missing:
            raise TrainingError(f"positives {missing[:5]} are not in the catalog; build pairs from the same catalog")
        self.pool = tuple(sorted(self.texts))
        self.sampler = sampler
        self.false_negatives = false_negatives
        self.count = count
        self.seed = seed
        self.fills = 0
        self.negatives: list[tuple[str, ...]] = [()] * len(self.pairs)
        self.teacher = teacher
        self.candidates: list[tuple[str, ...]] = [()] * len(self.pairs)
        self.labels: list[tuple[float, ...]] = [()] * len(self.pairs)

    def refresh(self, epoch: int) -> None:
        """Re-draw every row's negatives (and teacher candidates) for `epoch` (deterministic for a seed, epoch
        and pair)."""
        if self.teacher:
            for row, pair in enumerate(self.pairs):
                self.candidates[row], self.labels[row] = self.teacher.draw(pair, seed=self.seed, epoch=epoch)
        if not self.count:
            return
        for row, pair in enumerate(self.pairs):
            chosen = [n.product_id for n in self.sampler.sample(pair, seed=self.seed, epoch=epoch)][: self.count]
            if len(chosen) < self.count:
                chosen += self._fill(pair, chosen, epoch)
            self.negatives[row] = tuple(chosen)

    def state_dict(self) -> dict[str, Any]:
        """Every row's current draws and the sampler's log as JSON values, for a checkpoint: a resumed run trains
        on the negatives the interrupted one had drawn (`load_state_dict`), and its card counts the same levels."""
        return {
            "negatives": [list(ids) for ids in self.negatives],
            "fills": self.fills,
            "candidates": [list(ids) for ids in self.candidates],
            "labels": [list(scores) for scores in self.labels],
            "log": self.sampler.log.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replace the draws and the sampler's log with a checkpoint's (`state_dict`) of the same rows."""
        if len(state["negatives"]) != len(self.pairs):
            raise TrainingError(
                f"the checkpoint holds negatives for {len(state['negatives'])} rows, this run has "
                f"{len(self.pairs)}; resume with the data the checkpoint was trained on"
            )
        self.negatives = [tuple(ids) for ids in state["negatives"]]
        self.fills = state["fills"]
        self.candidates = [tuple(ids) for ids in state["candidates"]]
        self.labels = [tuple(scores) for scores in state["labels"]]
        self.sampler.log.load_state_dict(state["log"])

    def dataset(self) -> Dataset:
        """Columns anchor, positive and (through the transform) negative_1..negative_count, then with a teacher
        candidate_1..candidate_m and label."""
        from datasets import Dataset

        rows = {
            "anchor": [p.query for p in self.pairs],
            "positive": [self.texts[p.positive_id] for p in self.pairs],
            "row": list(range(len(self.pairs))),
        }
        return Dataset.from_dict(rows).with_transform(self._with_negatives)

    def row_texts(self, row: int) -> tuple[str, ...]:
        """Every text of row `row`: its query, its positive's text, its negatives' and its candidates' texts."""
        pair = self.pairs[row]
        others = (*self.negatives[row], *self.candidates[row])
        return (pair.query, self.texts[pair.positive_id], *(self.texts[n] for n in others))

    def _with_negatives(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        columns: dict[str, list[Any]] = {"anchor": batch["anchor"], "positive": batch["positive"]}
        for i in range(self.count):
            columns[f"negative_{i + 1}"] = [self.texts[self.negatives[row][i]] for row in batch["row"]]
        if self.teacher:
            for i in range(self.teacher.count):
                columns[f"candidate_{i + 1}"] = [self.texts[self.candidates[row][i]] for row in batch["row"]]
            columns["label"] = [list(self.labels[row]) for row in batch["row"]]
        return columns

    def _fill(self, pair: TrainingPair, chosen: list[str], epoch: int) -> list[str]:
        rng = keyed_rng(self.seed, epoch, "fill", query_key(pair.query), pair.positive_id)
        taken = set(chosen)
        fills: list[str] = []
        for _ in range(_FILL_TRIES * (self.count - len(chosen))):
            if len(chosen) + len(fills) == self.count:
                break
            candidate = self.pool[rng.randrange(len(self.pool))]
            if candidate not in taken and not self.false_negatives.rejects(pair, candidate):
                taken.add(candidate)
                fills.append(candidate)
        if len(chosen) + len(fills) < self.count:
            raise TrainingError(
                f"cannot find {self.count} negatives for {pair.query!r} in a catalog of "
                f"{len(self.pool)} products; lower the sampler counts"
            )
        self.fills += len(fills)
        return fills
