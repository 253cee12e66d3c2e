"""Batches of taxonomy neighbours (`training.topic_batches`): contiguous nodes, no text twice, narrower batches."""

from __future__ import annotations

import itertools
import random

import numpy as np

from tbhns_opensearch.taxonomy import NodePath
from tbhns_opensearch.training.experimental.topic_batches import TaxonomyBatchSampler, distinct_batches, taxonomy_order

TREE = [(top, mid, leaf) for top in "ABCD" for mid in "xyz" for leaf in "123"]


def _paths(rows: int, seed: int = 0) -> list[NodePath]:
    rng = random.Random(seed)
    return [rng.choice(TREE)[: rng.choice((1, 2, 3, 3))] for _ in range(rows)]


def test_the_rows_of_every_node_are_contiguous_at_every_level() -> None:
    paths = _paths(300)
    order = taxonomy_order(paths, np.random.default_rng(7))
    assert sorted(order) == list(range(300))
    for depth in (1, 2, 3):
        nodes = [paths[row][:depth] for row in order if len(paths[row]) >= depth]
        runs = [node for node, _ in itertools.groupby(nodes)]
        assert len(runs) == len(set(runs))  # a node never reappears after another one began
    assert order != taxonomy_order(paths, np.random.default_rng(8))


def test_no_batch_holds_a_text_twice_and_every_row_comes_once() -> None:
    texts = {row: {f"query {row}", f"product {row % 7}"} for row in range(40)}  # products repeat every 7 rows
    batches = distinct_batches(list(range(40)), texts.__getitem__, batch_size=5)
    assert sorted(row for batch in batches for row in batch) == list(range(40))
    for batch in batches:
        values = [value for row in batch for value in texts[row]]
        assert len(values) == len(set(values))
    assert all(len(batch) == 5 for batch in batches[:-2])  # only the last batches may be short


def test_sampler_batches_share_their_node_far_more_than_shuffled_ones() -> None:
    paths = [random.Random(row).choice(TREE) for row in range(480)]
    sampler = TaxonomyBatchSampler(
        list(range(480)), batch_size=16, drop_last=False, paths=paths, texts=lambda row: {f"query {row}"}, seed=13
    )

    def shared_mid(batches: list[list[int]]) -> float:
        pairs = [(a, b) for batch in batches for a, b in itertools.combinations(batch, 2)]
        return sum(paths[a][:2] == paths[b][:2] for a, b in pairs) / len(pairs)

    epoch0 = list(sampler)
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert len(epoch0) == len(sampler) == 30 and sorted(r for b in epoch0 for r in b) == list(range(480))
    shuffled = np.random.default_rng(0).permutation(480).reshape(30, 16).tolist()
    assert shared_mid(epoch0) > 0.5 > 0.1 > shared_mid(shuffled)  # 12 level-2 nodes: 1 in 12 by chance
    assert epoch0 != epoch1
