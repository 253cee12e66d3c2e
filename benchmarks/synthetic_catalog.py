"""A SYNTHETIC catalog of any size for scale runs, made by recombining real product titles.

Each synthetic product takes the first half of one real title's words and the second half of another's (both
drawn with a fixed seed from a real catalog), so titles keep a real vocabulary, lengths and brand / size
patterns (a draw may pair a title with itself). Ids are `syn-<n>`; reports label the catalog SYNTHETIC
(`knn_recall.py --catalog`). The file is written under `runs/` (git-ignored): a catalog derived from Home
Depot stays out of the repository.

    python benchmarks/synthetic_catalog.py --dataset homedepot --products 500000 --out runs/synthetic-500k.jsonl
    tbhns ingest runs/synthetic-500k.jsonl --alias synthetic-500k --encoder runs/encoders/minilm --backend onnx-int8
    python benchmarks/knn_recall.py --alias synthetic-500k --encoder runs/encoders/minilm --dataset homedepot \\
        --catalog "SYNTHETIC: 500,000 recombined Home Depot titles" \\
        --out benchmarks/results/knn_recall_synthetic-500k.md
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

from tbhns_opensearch.catalog.adapters import read_dataset


def recombined_titles(titles: Sequence[str], count: int, seed: int = 0) -> Iterator[str]:
    """`count` titles, each the first half of one title of `titles` and the second half of another.

    Example:
        >>> list(recombined_titles(["red claw hammer", "oak stair tread 36 in"], 2, seed=1))
        ['red claw hammer', 'oak stair tread hammer']
    """
    rng = random.Random(seed)
    for _ in range(count):
        head, tail = rng.choice(titles).split(), rng.choice(titles).split()
        yield " ".join(head[: (len(head) + 1) // 2] + tail[(len(tail) + 1) // 2 :])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="homedepot", help="the real catalog whose titles are recombined")
    parser.add_argument("--products", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    titles = [product.title for product in read_dataset(args.dataset) if product.title.strip()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as out:
        for n, title in enumerate(recombined_titles(titles, args.products, args.seed)):
            out.write(json.dumps({"id": f"syn-{n}", "title": title}) + "\n")
    print(f"{args.products} SYNTHETIC products from {len(titles)} real {args.dataset} titles -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
