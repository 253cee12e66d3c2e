"""Batches of taxonomy neighbours: topic-aware batch sampling, with the taxonomy as the topics.

In-batch negatives are only as hard as the batch is narrow. A shuffled batch of 256 Home Depot rows mixes
lamps, pipes and paint, so nearly all of each row's ~1,000 in-batch candidates are easy; TB-HNS adds two hard
ones per row. Here the batch itself comes from one corner of the taxonomy: rows are ordered by their
positive's node (the nodes of each level, and the rows of each node, in a random order per epoch) and cut into
batches in that order, so a batch holds the rows of one node, then its siblings, then its cousins: the levels
TB-HNS draws from. The batches are then shuffled. As with sentence-transformers' NO_DUPLICATES batches, no
text appears twice in a batch: a row that would repeat one waits for the next batch. Hofstätter et al. (2021,
"Efficiently Teaching an Effective Dense Retriever with Balanced Topic Aware Sampling") draw each batch from
one k-means cluster of the queries instead.

Example:
    >>> paths = [("Tools", "Saws"), ("Lighting",), ("Tools", "Drills"), ("Lighting", "Lamps"), ("Tools", "Saws")]
    >>> [paths[row] for row in taxonomy_order(paths, np.random.default_rng(1))]
    [('Tools', 'Drills'), ('Tools', 'Saws'), ('Tools', 'Saws'), ('Lighting',), ('Lighting', 'Lamps')]
    >>> distinct_batches([0, 1, 2], {0: {"a", "b"}, 1: {"b"}, 2: {"c"}}.__getitem__, batch_size=2)
    [[0, 2], [1]]
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any

import numpy as np
from sentence_transformers.base.sampler import DefaultBatchSampler

from tbhns_opensearch.taxonomy import NodePath


def taxonomy_order(paths: Sequence[NodePath], rng: np.random.Generator) -> list[int]:
    """Row indices such that the rows of each node are contiguous, as are the nodes under each parent, at
    every level; the nodes of a level and the rows of a node come in `rng`'s order."""
    nodes = sorted({path[:depth] for path in paths for depth in range(1, len(path) + 1)})
    rank = dict(zip(nodes, rng.permutation(len(nodes)).tolist()))
    tiebreak = rng.permutation(len(paths)).tolist()
    keys = [tuple(rank[path[:depth]] for depth in range(1, len(path) + 1)) for path in paths]
    return sorted(range(len(paths)), key=lambda row: (keys[row], tiebreak[row]))


def distinct_batches(order: Sequence[int], texts: Callable[[int], Collection[str]], batch_size: int) -> list[list[int]]:
    """`order` cut into batches of `batch_size` in which no text of `texts(row)` appears twice; a row that would
    repeat one is left for the next batch that can take it (so only the last batches may be short)."""
    batches: list[list[int]] = []
    waiting = list(order)
    while waiting:
        batch: list[int] = []
        seen: set[str] = set()
        later: list[int] = []
        for row in waiting:
            row_texts = texts(row)
            if len(batch) < batch_size and seen.isdisjoint(row_texts):
                batch.append(row)
                seen.update(row_texts)
            else:
                later.append(row)
        batches.append(batch)
        waiting = later
    return batches


class TaxonomyBatchSampler(DefaultBatchSampler):
    """A sentence-transformers batch sampler of taxonomy neighbours (module docstring). Give it to the trainer
    as `batch_sampler=functools.partial(TaxonomyBatchSampler, paths=..., texts=...)`.

    Args:
        dataset: The training rows (the trainer passes it).
        batch_size: Rows per batch.
        drop_last: Leave out short batches.
        paths: The taxonomy node of each row's positive, by row index.
        texts: Row index -> every text of the row (anchor, positive, negatives).
        seed: With the epoch, seeds the order.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        drop_last: bool,
        valid_label_columns: list[str] | None = None,
        generator: Any = None,
        seed: int = 0,
        *,
        paths: Sequence[NodePath],
        texts: Callable[[int], Collection[str]],
    ) -> None:
        super().__init__(
            dataset,
            batch_size=batch_size,
            drop_last=drop_last,
            valid_label_columns=valid_label_columns,
            generator=generator,
            seed=seed,
        )
        if len(paths) != len(dataset):
            raise ValueError(f"{len(paths)} taxonomy paths for {len(dataset)} training rows")
        self.paths = paths
        self.texts = texts

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        batches = distinct_batches(taxonomy_order(self.paths, rng), self.texts, self.batch_size)
        kept = [batch for batch in batches if len(batch) == self.batch_size or not self.drop_last]
        for position in rng.permutation(len(kept)):
            yield kept[position]

    def __len__(self) -> int:
        rows, size = len(self.paths), self.batch_size
        return rows // size if self.drop_last else -(-rows // size)
