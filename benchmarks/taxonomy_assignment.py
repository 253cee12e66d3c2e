"""How well `tbhns taxonomy assign` places products, where the truth exists (catalogs with their own categories).

For Amazon UK toys (real 2-5 level paths) and Flipkart (real deep category trees), each product is assigned
to Google's product taxonomy from its text WITHOUT its own category (the path is removed before encoding),
then the assigned nodes are compared with the catalog's own categories:
- NMI (normalized mutual information) between the assigned node cut at depth d and the catalog's category cut
  at depth d' (d, d' in 1..2); unknown counts as one more cluster;
- purity: the share of products whose assigned node (cut at depth 2) holds mostly their own catalog category;
- coverage: the share of products that were not left unknown; the top-level nodes they went to.
The mapping between the two trees is not given: NMI and purity need none. Also prints `--sample` random
assignments of a third catalog's file (Home Depot), for a reader to judge.

    python benchmarks/taxonomy_assignment.py --sample-file runs/taxonomy/homedepot-google.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

from sklearn.metrics import normalized_mutual_info_score

from tbhns_opensearch.catalog.adapters import read_dataset
from tbhns_opensearch.encoder import Encoder
from tbhns_opensearch.taxonomy_assign import CategoryTree, assign_products, read_assignments

ROOT = Path(__file__).resolve().parents[1]


def evaluate(
    dataset: str, tree: CategoryTree, node_vectors, encoder: Encoder, min_confidence: float, temperature: float
) -> dict:  # type: ignore[no-untyped-def]
    products = [p for p in read_dataset(dataset) if p.taxonomy_path]
    texts = [replace(p, taxonomy_path=()).text_for_embedding() for p in products]  # the truth is not shown
    assigned = assign_products(
        [p.id for p in products],
        encoder.encode(texts),
        tree,
        node_vectors,
        min_confidence=min_confidence,
        temperature=temperature,
    )
    result: dict = {
        "dataset": dataset,
        "products": len(products),
        "coverage": round(sum(bool(a.path) for a in assigned) / len(products), 4),
        "top_nodes": Counter(a.path[0] if a.path else "<unknown>" for a in assigned).most_common(6),
    }
    for own_depth in (1, 2):
        truth = [" > ".join(p.taxonomy_path[:own_depth]) for p in products]
        for depth in (1, 2):
            labels = [" > ".join(a.path[:depth]) or "<unknown>" for a in assigned]
            result[f"nmi_own{own_depth}_assigned{depth}"] = round(normalized_mutual_info_score(truth, labels), 4)
        clusters: dict[str, Counter] = defaultdict(Counter)
        for label, own in zip((" > ".join(a.path[:2]) or "<unknown>" for a in assigned), truth):
            clusters[label][own] += 1
        result[f"purity_own{own_depth}"] = round(
            sum(c.most_common(1)[0][1] for c in clusters.values()) / len(products), 4
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["amazon-uk-toys", "flipkart"])
    parser.add_argument("--encoder", default="all-MiniLM-L6-v2")
    parser.add_argument("--min-confidence", type=float, default=0.5)
    parser.add_argument("--temperature", type=float, default=0.02)
    parser.add_argument("--sample-file", type=Path, help="an assignments JSONL to print random lines of")
    parser.add_argument("--sample", type=int, default=30)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "taxonomy_assignment.json")
    args = parser.parse_args()
    tree = CategoryTree.read()
    encoder = Encoder(args.encoder, batch_size=128, max_seq_length=32)  # as `tbhns taxonomy assign`
    node_vectors = encoder.encode(tree.texts())
    results = [evaluate(d, tree, node_vectors, encoder, args.min_confidence, args.temperature) for d in args.datasets]
    report = {
        "taxonomy": "Google product taxonomy 2021-09-21",
        "encoder": args.encoder,
        "min_confidence": args.min_confidence,
        "temperature": args.temperature,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    if args.sample_file:
        paths = read_assignments(args.sample_file)
        titles = {p.id: p.title for p in read_dataset("homedepot")} if "homedepot" in args.sample_file.name else {}
        for pid in random.Random(0).sample(sorted(paths), args.sample):
            print(f"{titles.get(pid, pid)[:70]:70} -> {' > '.join(paths[pid]) or '<unknown>'}")


if __name__ == "__main__":
    main()
