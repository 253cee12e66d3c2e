"""Hybrid fusion grid: candidates per sub-query (depth) x BM25 weight, quality on a benchmark config's queries.

Hybrid search min-max normalizes the top `depth` BM25 and knn hits and averages them with weights (bm25,
vector). Both knobs move quality, and depth moves latency (`query_latency.py`), so they are chosen together.
Per query this fetches, through the real node, the BM25 clause's top hits once (the top `depth` of a deeper
list are the same hits) and the knn clause's hits once per depth (Lucene's HNSW searches with k candidates, so
k = 24 is not the top 24 of k = 200), with the very clauses the hybrid query sends (`query.builders`), then
fuses them offline with `query.fusion.minmax_fuse`, the client replay of OpenSearch's normalization processor
(tested to rank as the server does). Every (depth, weight) cell therefore costs no further request.

Reported: NDCG@10 / Recall@24 per cell; the best weight per depth against `--baseline` (default: `HybridConfig`'s
cell) with a paired randomization test (Holm over the family); BM25 and knn alone for reference. Tune on a
validation split; confirm a choice on a test split or on unseen queries, never choose there.

    tbhns ingest --dataset homedepot --encoder runs/compare/homedepot-taxonomy-batch256-bf16 --alias hd-tb
    python benchmarks/hybrid_fusion.py benchmarks/configs/hybrid-depth-homedepot.toml --alias hd-tb \\
        --encoder runs/compare/homedepot-taxonomy-batch256-bf16 \\
        --out benchmarks/results/hybrid-fusion/homedepot-validation.md

Writes the Markdown table (aggregates only: per-query figures of non-commercial sets stay out of the repository).
"""

from __future__ import annotations

import argparse
import os
import platform
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from tbhns_opensearch.bench.runner import BenchConfig, load_inputs
from tbhns_opensearch.cluster import make_client
from tbhns_opensearch.config import OpenSearchConfig
from tbhns_opensearch.eval.metrics import Evaluation, MetricConfig, evaluate
from tbhns_opensearch.eval.significance import adjust, paired_test
from tbhns_opensearch.query.builders import bm25_query, knn_query
from tbhns_opensearch.query.encoding import QueryEncoder
from tbhns_opensearch.query.fusion import HybridConfig, RankedList, bm25_weighted, minmax_fuse

DEPTHS = (24, 50, 100, 200)
BM25_WEIGHTS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
PAGE = 24  # hits a page shows: Recall@24, NDCG@10
METRICS = ("ndcg@10", "recall@24")

Lists = dict[str, tuple[RankedList, dict[int, RankedList]]]
"""Per query text: the BM25 list (deepest depth) and the knn list per depth."""


def fetch_lists(
    client: object, alias: str, encoder: QueryEncoder, texts: Sequence[str], depths: Sequence[int] = DEPTHS
) -> Lists:
    """Each query's BM25 hits (top max(depths)) and knn hits (k = each depth), as (product id, raw score)."""

    def hits(body: dict) -> RankedList:
        found = client.search(index=alias, body={"_source": False, **body})["hits"]["hits"]  # type: ignore[attr-defined]
        return [(hit["_id"], hit["_score"]) for hit in found]

    lists: Lists = {}
    for text in tqdm(texts, desc="queries", unit="query"):
        vector = [float(x) for x in encoder.encode(text)]
        bm25 = hits({"size": max(depths), "query": bm25_query(text)})
        lists[text] = (bm25, {depth: hits({"size": depth, "query": knn_query(vector, depth)}) for depth in depths})
    return lists


def fused_run(lists: Lists, ids: dict[str, str], depth: int, bm25_weight: float) -> dict[str, dict[str, float]]:
    """qid -> {product id: score} of the top `PAGE` hybrid hits at `depth` with weights (bm25_weight, rest).

    Example:
        >>> lists = {"usb": ([("a", 3.0), ("b", 1.0)], {2: [("b", 0.9), ("c", 0.5)]})}
        >>> fused_run(lists, {"usb": "q1"}, depth=2, bm25_weight=0.5)
        {'q1': {'b': 0.5005000233650208, 'a': 0.5, 'c': 0.0005000000237487257}}
    """
    config = HybridConfig(weights=bm25_weighted(bm25_weight), depth=depth)
    return {
        ids[text]: dict(minmax_fuse([bm25[:depth], knn[depth]], config)[:PAGE]) for text, (bm25, knn) in lists.items()
    }


def grid_cell(text: str) -> tuple[int, float]:
    """A grid cell written DEPTH:BM25, e.g. "100:0.3".

    Example:
        >>> grid_cell("100:0.3")
        (100, 0.3)
    """
    depth, _, weight = text.partition(":")
    try:
        cell = (int(depth), float(weight))
    except ValueError:
        cell = None
    if cell is None or cell[0] not in DEPTHS or cell[1] not in BM25_WEIGHTS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a cell of the grid: write DEPTH:BM25 with a depth of "
            f"{DEPTHS} and a weight of {BM25_WEIGHTS}, e.g. 100:0.3"
        )
    return cell


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path, help="benchmark config naming the catalog, queries and split")
    parser.add_argument("--alias", required=True, help="product alias holding that catalog, built with --encoder")
    parser.add_argument("--encoder", required=True, help="the encoder the index was built with")
    parser.add_argument("--out", type=Path, required=True, help="Markdown file to write")
    parser.add_argument(
        "--baseline",
        type=grid_cell,
        default=(HybridConfig().depth, HybridConfig().weights[0]),
        metavar="DEPTH:BM25",
        help="the cell each depth's best weight is tested against, e.g. 100:0.3 [default: HybridConfig's]",
    )
    args = parser.parse_args(argv)

    config = BenchConfig.from_toml(args.config)
    _, query_set = load_inputs(config)
    ids = {text: qid for qid, text in query_set.texts.items()}
    lists = fetch_lists(make_client(OpenSearchConfig.from_env()), args.alias, QueryEncoder(args.encoder), list(ids))
    metrics = MetricConfig(threshold=config.threshold)
    grid = {
        (depth, weight): evaluate(fused_run(lists, ids, depth, weight), query_set.qrels, metrics)
        for depth in DEPTHS
        for weight in BM25_WEIGHTS
    }
    alone = {
        "BM25 alone": evaluate({ids[t]: dict(bm25[:PAGE]) for t, (bm25, _) in lists.items()}, query_set.qrels, metrics),
        "knn alone (k = 24)": evaluate(
            {ids[t]: dict(knn[DEPTHS[0]][:PAGE]) for t, (_, knn) in lists.items()}, query_set.qrels, metrics
        ),
    }
    report = render(args, config, grid, alone)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(report)
    return 0


def render(
    args: argparse.Namespace,
    config: BenchConfig,
    grid: dict[tuple[int, float], Evaluation],
    alone: dict[str, Evaluation],
) -> str:
    default = HybridConfig()
    default_cell = (default.depth, default.weights[0])
    baseline = args.baseline
    queries = len(next(iter(grid.values())).per_query[METRICS[0]])
    lines = [
        f"# Hybrid fusion grid: {config.title}",
        "",
        f"{queries} {config.source.upper()} queries with a relevant product (split: {config.split}; relevant = "
        f"grade >= {config.threshold}), alias `{args.alias}`, encoder `{args.encoder}`. Each cell: NDCG@10 / "
        f"Recall@24 of the top {PAGE} hybrid hits, min-max fusion with weights (bm25, 1 - bm25) over `depth` "
        f"candidates per sub-query, fused offline from lists the node returned. **Bold**: the default "
        f"({default.depth}, {default.weights[0]} / {default.weights[1]}); `_`: the baseline of the tests below; "
        "`*`: the best NDCG@10 of its depth on these queries (choose on a validation split; on a test split, read "
        "only the cell chosen there).",
        "",
        "| depth | " + " | ".join(f"bm25 {w}" for w in BM25_WEIGHTS) + " |",
        "|---:|" + "---|" * len(BM25_WEIGHTS),
    ]
    best = {depth: max(BM25_WEIGHTS, key=lambda w, d=depth: grid[(d, w)].mean["ndcg@10"]) for depth in DEPTHS}
    for depth in DEPTHS:
        cells = []
        for weight in BM25_WEIGHTS:
            mean = grid[(depth, weight)].mean
            cell = f"{mean['ndcg@10']:.3f} / {mean['recall@24']:.3f}" + ("*" if best[depth] == weight else "")
            cell = f"_{cell}_" if (depth, weight) == baseline else cell
            cells.append(f"**{cell}**" if (depth, weight) == default_cell else cell)
        lines.append(f"| {depth} | " + " | ".join(cells) + " |")
    lines += ["", "| reference | NDCG@10 | Recall@24 |", "|---|---:|---:|"]
    lines += [f"| {name} | {e.mean['ndcg@10']:.4f} | {e.mean['recall@24']:.4f} |" for name, e in alone.items()]
    family = adjust(
        [
            paired_test(
                grid[baseline].per_query[metric],
                grid[(depth, best[depth])].per_query[metric],
                metric=metric,
                baseline_name=f"depth {baseline[0]}, bm25 {baseline[1]}",
                system_name=f"depth {depth}, bm25 {best[depth]}",
                seed=0,
            )
            for depth in DEPTHS
            for metric in METRICS
            if (depth, best[depth]) != baseline
        ],
        "holm",
    )
    lines += [
        "",
        f"Best weight of each depth on these queries against depth {baseline[0]}, bm25 {baseline[1]} (paired "
        "randomization test, Holm over the family):",
        "",
        "| system | metric | mean diff | 95% CI | p (Holm) |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {t.system} | {t.metric} | {t.mean_diff:+.4f} | [{t.ci_low:+.4f}, {t.ci_high:+.4f}] | {t.p_adjusted:.4f} |"
        for t in family
    ]
    lines += [
        "",
        f"Run: `python benchmarks/hybrid_fusion.py {args.config} --alias {args.alias} --encoder "
        f"{args.encoder} --baseline {baseline[0]}:{baseline[1]} --out {args.out}` on {platform.machine()}, "
        f"{os.cpu_count()} CPU cores.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
