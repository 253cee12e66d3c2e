"""How many sampled negatives would a stronger judge call relevant? Taxonomy negatives vs random ones.

For every training pair of a config (epoch-0 draws, exactly as `tbhns train` makes them), each negative is
judged by the base encoder: "suspect" when the base model scores it at least as close to the query as the
pair's own positive (the rule of the false-negative mask with margin 0), "near" when within 0.05 below it
(what `masked_mnrl` with margin 0.05 leaves out). Random products from the catalog (what in-batch negatives
are, in effect) get the same judge for comparison.

    python benchmarks/false_negatives.py training/homedepot-taxonomy.toml
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from tbhns_opensearch.training.batches import NegativeTable
from tbhns_opensearch.training.config import load_train_config
from tbhns_opensearch.training.data import prepare_data
from tbhns_opensearch.training.mining import SamplerContext, build_sampler
from tbhns_opensearch.training.negatives import FalseNegativeFilter
from tbhns_opensearch.training.retrieval import encode_texts, product_index
from tbhns_opensearch.training.trainer import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path)
    parser.add_argument("--margin", type=float, default=0.05)
    parser.add_argument(
        "--base-vectors",
        type=Path,
        help="cached (n_products, dim) .npy of the base model at the config's max_seq_length",
    )
    args = parser.parse_args()
    config = load_train_config(args.config)
    data = prepare_data(config.data, config.seed)
    model = load_model(config)
    ids = [p.id for p in data.products]
    vectors = np.load(args.base_vectors) if args.base_vectors else product_index(model, data.products).vectors
    row = {pid: i for i, pid in enumerate(ids)}
    false_negatives = FalseNegativeFilter.from_products(data.products, vectors, config.sampler.cosine_threshold)
    setup = build_sampler(SamplerContext(config, data, model, vectors, false_negatives, None))
    table = NegativeTable(
        data.train_pairs, data.products, setup.sampler, false_negatives, config.negatives_per_pair, config.seed
    )
    table.refresh(epoch=0)
    queries = sorted({p.query for p in data.train_pairs})
    query_vectors = dict(zip(queries, encode_texts(model, queries)))
    rng = np.random.default_rng(config.seed)
    counts = {"taxonomy": [0, 0, 0], "random": [0, 0, 0]}  # negatives, suspect, near
    for pair, negatives in zip(table.pairs, table.negatives):
        q = query_vectors[pair.query]
        positive = float(vectors[row[pair.positive_id]] @ q)
        drawn = {
            "taxonomy": [row[n] for n in negatives],
            "random": [i for i in rng.integers(0, len(ids), size=len(negatives)) if ids[i] not in pair.relevant_ids],
        }
        for name, rows in drawn.items():
            scores = vectors[rows] @ q
            counts[name][0] += len(rows)
            counts[name][1] += int((scores >= positive).sum())
            counts[name][2] += int((scores >= positive - args.margin).sum())
    report = {
        name: {"negatives": n, "suspect_share": round(s / n, 4), f"within_{args.margin}_share": round(w / n, 4)}
        for name, (n, s, w) in counts.items()
    }
    print(
        json.dumps(
            {
                "config": str(args.config),
                "pairs": len(table.pairs),
                "levels": dict(setup.sampler.log.counts),
                "judge": "base model",
                **report,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
