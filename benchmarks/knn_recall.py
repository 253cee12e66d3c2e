"""HNSW against exact search on an ingested catalog: recall of the approximate top k and its latency per
`ef_search`, with the index's size on disk and the node's heap.

For each real query of the dataset's judgments (the first `--queries` distinct ones), the exact top k comes
from a `script_score` query with the k-NN plugin's `knn_score` script (brute force over every vector, in the
index's own space type), and the approximate top k from the `knn` query with `method_parameters.ef_search` set to each
value. Recall@k against exact is |approximate ∩ exact| / k, averaged over the queries; latency is the wall time
of each request (one client, warm, query vectors computed beforehand).

    tbhns ingest --dataset homedepot --alias hd --encoder runs/encoders/minilm
    python benchmarks/knn_recall.py --alias hd --encoder runs/encoders/minilm --dataset homedepot

Writes benchmarks/results/knn_recall_<dataset>.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tbhns_opensearch.catalog.adapters import load_judgments
from tbhns_opensearch.cluster import make_client
from tbhns_opensearch.config import OpenSearchConfig
from tbhns_opensearch.encoder import Encoder

RESULTS = Path(__file__).parent / "results"
EF_SEARCH = (24, 50, 100, 200, 400)


def exact_body(vector: list[float], k: int, space_type: str) -> dict[str, Any]:
    """Brute force over every document's vector in the index's space (the k-NN plugin's scoring script)."""
    script = {
        "source": "knn_score",
        "lang": "knn",
        "params": {"field": "embedding", "query_value": vector, "space_type": space_type},
    }
    return {"size": k, "_source": False, "query": {"script_score": {"query": {"match_all": {}}, "script": script}}}


def approximate_body(vector: list[float], k: int, ef_search: int) -> dict[str, Any]:
    knn = {"vector": vector, "k": k, "method_parameters": {"ef_search": ef_search}}
    return {"size": k, "_source": False, "query": {"knn": {"embedding": knn}}}


def timed_ids(client: Any, alias: str, body: dict[str, Any]) -> tuple[list[str], float]:
    started = time.perf_counter()
    hits = client.search(index=alias, body=body)["hits"]["hits"]
    return [hit["_id"] for hit in hits], (time.perf_counter() - started) * 1000


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alias", required=True, help="product alias holding the catalog's vectors")
    parser.add_argument("--encoder", required=True, help="the encoder the index was built with")
    parser.add_argument("--dataset", default="icecat", help="whose judged queries to send (icecat, homedepot, wands)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=24)
    parser.add_argument(
        "--catalog",
        help="what the alias holds, for the report, e.g. 'SYNTHETIC: recombined Home "
        "Depot titles' (default: the dataset's REAL catalog)",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    client = make_client(OpenSearchConfig.from_env())
    texts = list(dict.fromkeys(j.query for j in load_judgments(args.dataset)))[: args.queries]
    vectors = [v.tolist() for v in Encoder(args.encoder, backend="auto").encode(texts)]
    mapping = next(iter(client.indices.get_mapping(index=args.alias).values()))["mappings"]["properties"]["embedding"]
    method = mapping.get("method", {})
    space_type = method["space_type"]
    for vector in vectors[:10]:  # warm-up: graphs and doc values into memory
        client.search(index=args.alias, body=approximate_body(vector, args.k, max(EF_SEARCH)))
        client.search(index=args.alias, body=exact_body(vector, args.k, space_type))
    exact, exact_ms = zip(*(timed_ids(client, args.alias, exact_body(v, args.k, space_type)) for v in vectors))
    rows = [("exact (script_score)", 1.0, statistics.median(exact_ms))]
    for ef in EF_SEARCH:
        found, ms = zip(*(timed_ids(client, args.alias, approximate_body(v, args.k, ef)) for v in vectors))
        recall = statistics.mean(len(set(a) & set(e)) / max(1, len(e)) for a, e in zip(found, exact))
        rows.append((f"HNSW, ef_search {ef}", recall, statistics.median(ms)))
    out = args.out or RESULTS / f"knn_recall_{args.dataset}.md"
    out.write_text(render(args, client, len(texts), rows, method))
    print(out.read_text())
    return 0


def render(
    args: argparse.Namespace, client: Any, queries: int, rows: list[tuple[str, float, float]], method: dict[str, Any]
) -> str:
    """The Markdown report; `method` is the vector field's HNSW method from the index mapping."""
    stats = client.indices.stats(index=args.alias, metric="store,docs,segments")["_all"]["primaries"]
    catalog = args.catalog or f"REAL {args.dataset} catalog"
    catalog_flag = f" --catalog '{args.catalog}'" if args.catalog else ""
    settings = next(iter(client.indices.get_settings(index=args.alias).values()))["settings"]["index"]
    heap = [n["jvm"]["mem"] for n in client.nodes.stats(metric="jvm")["nodes"].values()]
    lines = [
        f"# HNSW against exact search — {catalog}",
        "",
        f"{queries} REAL {args.dataset} queries (the first distinct ones of its judgments), encoder `{args.encoder}`, "
        f"top {args.k}; {stats['docs']['count']} products ({catalog}) behind `{args.alias}`, "
        f"{stats['segments']['count']} segments: {method.get('engine')} {method.get('space_type')} "
        f"HNSW m={method.get('parameters', {}).get('m')}, ef_construction="
        f"{method.get('parameters', {}).get('ef_construction')}, {settings.get('number_of_shards')} shard(s); "
        f"index size on disk {stats['store']['size_in_bytes'] / 2**20:.0f} MiB; node heap used "
        f"{sum(h['heap_used_in_bytes'] for h in heap) / 2**20:.0f} of "
        f"{sum(h['heap_max_in_bytes'] for h in heap) / 2**20:.0f} MiB.",
        "",
        f"| search | R@{args.k} against exact | p50 ms |",
        "|---|---:|---:|",
        *(f"| {name} | {recall:.4f} | {ms:.1f} |" for name, recall, ms in rows),
        "",
        f"Run: `python benchmarks/knn_recall.py --alias {args.alias} --encoder {args.encoder} --dataset {args.dataset} "
        f"--queries {args.queries}{catalog_flag}` on {os.cpu_count()} CPU cores, the node on the same machine.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
