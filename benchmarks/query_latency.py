"""Query latency of every search mode on an ingested catalog: p50 / p95, one client, warm, as a ratio to BM25.

Queries are the distinct real shopper queries of the Icecat judgments. Each query runs once in every mode per
pass (`--passes`, default 3), modes interleaved query by query in a seeded random order (so no mode always runs
right after the same other one), after a warm-up pass (model loaded, pipeline created, cluster caches filled).
Latency is the wall time of `SearchClient.search` (query encoding, user profile, requests, parsing),
measured twice: with the query-vector cache off (every query encoded) and with every query already in the
cache (what repeated queries cost; isolates the cluster side). Personalized and hybrid-with-user searches cycle
through `--users` users whose histories are `--history` random catalog products each (seeded, marked
simulated; they only need to exist), written to a temporary users index that is deleted at the end. Their
profiles are reused for `user_ttl_s` (the client's default), except in the row "personalized, profile read",
which reads the profile on every query (in the same `msearch` as the search, which runs with the profile read
last and again when the read finds it changed; `query.profile_reading`); "hybrid server, depth 100"
retrieves 100 candidates per sub-query instead of the default 24 (as do the depth 50 and 200 rows); "hybrid
server, ids + mget" reads the page as indices made before the template's `brand.raw` are read (candidate ids,
then one `mget`), where the other hybrid server rows read it from doc values in the same request. With
`--split-shards N`, a copy of the index split into N primary shards (the `_split` API: same segments, no
re-encoding; deleted at the end) adds the rows "bm25, N shards" and "hybrid server, N shards",
still as ratios to the one-shard BM25, and a quality table: NDCG@10 and Recall@24 of BM25 and hybrid on one
shard vs N shards over the judged Icecat queries (REAL; grade >= 1 relevant), with a paired randomization test
(Holm over the two modes) and the mean overlap of the two top-24 lists (each shard scores BM25 with its own
term statistics, so rankings may move).

Run against a full Icecat index built with the same encoder, e.g. with an exported (ONNX) encoder:
    tbhns ingest --dataset icecat --alias icecat --encoder runs/train/icecat-taxonomy
    python benchmarks/query_latency.py --alias icecat --encoder runs/train/icecat-taxonomy
It writes benchmarks/results/query_latency_icecat.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from tbhns_opensearch.bench.latency import LatencyStats, latency_stats
from tbhns_opensearch.bench.load_test_users import write_load_test_users
from tbhns_opensearch.catalog.adapters import load_judgments
from tbhns_opensearch.catalog.judgments import graded_qrels
from tbhns_opensearch.cluster import make_client
from tbhns_opensearch.config import OpenSearchConfig
from tbhns_opensearch.encoder import DEFAULT_ENCODER
from tbhns_opensearch.eval.metrics import MetricConfig, evaluate
from tbhns_opensearch.eval.significance import adjust, paired_test
from tbhns_opensearch.query import SearchClient, SearchResponse
from tbhns_opensearch.query.fusion import HybridConfig

RESULTS = Path(__file__).parent / "results" / "query_latency_icecat.md"
OTHER_DEPTHS = (50, 100, 200)  # hybrid candidates per sub-query besides the default (24 = k, a page)


def systems(
    search: SearchClient, users: Sequence[str], split: tuple[int, str] | None = None
) -> dict[str, Callable[[str, int], SearchResponse]]:
    """Name -> (query, index of the query) -> response, for every mode and hybrid path. Rows with "profile
    read" read the user's profile on every query (TTL cache off); the others reuse it (`user_ttl_s`).
    `split`: (shards, index) of a split copy, searched by the "N shards" rows."""

    def user(i: int) -> str:
        return users[i % len(users)]

    reader = replace_client(search, user_ttl_s=0.0)
    two_requests = replace_client(search, kind=TwoRequestHybrid)
    deep = {depth: replace_client(search, hybrid=replace(search.hybrid, depth=depth)) for depth in OTHER_DEPTHS}
    return {
        "bm25": lambda q, i: search.search(q, mode="bm25"),
        "semantic": lambda q, i: search.search(q, mode="semantic"),
        "personalized": lambda q, i: search.search(q, mode="personalized", user_id=user(i)),
        "personalized, profile read": lambda q, i: reader.search(q, mode="personalized", user_id=user(i)),
        "hybrid server": lambda q, i: search.search(q, mode="hybrid", path="server"),
        "hybrid server, ids + mget": lambda q, i: two_requests.search(q, mode="hybrid", path="server"),
        **{
            f"hybrid server, depth {depth}": (
                lambda q, i, client=client: client.search(q, mode="hybrid", path="server")
            )
            for depth, client in deep.items()
        },
        "hybrid client": lambda q, i: search.search(q, mode="hybrid", path="client"),
        "hybrid server + user": lambda q, i: search.search(q, mode="hybrid", path="server", user_id=user(i)),
        **(split_rows(replace_client(search, alias=split[1]), split[0]) if split else {}),
    }


def split_rows(sharded: SearchClient, shards: int) -> dict[str, Callable[[str, int], SearchResponse]]:
    """The BM25 and hybrid rows on an index of `shards` primary shards."""
    return {
        f"bm25, {shards} shards": lambda q, i: sharded.search(q, mode="bm25"),
        f"hybrid server, {shards} shards": lambda q, i: sharded.search(q, mode="hybrid", path="server"),
    }


def split_copy(client: Any, alias: str, shards: int) -> str:
    """A copy of the single index behind `alias` split into `shards` primary shards, green; the source is
    write-blocked only while the split starts."""
    (source,) = client.indices.get_alias(name=alias)
    target = f"{source}-split{shards}-{uuid.uuid4().hex[:6]}"
    client.indices.put_settings(index=source, body={"index.blocks.write": True})
    try:
        client.indices.split(
            index=source,
            target=target,
            body={
                "settings": {
                    "index.number_of_shards": shards,
                    "index.number_of_replicas": 0,
                    "index.blocks.write": None,
                }
            },
        )
        client.cluster.health(index=target, wait_for_status="green", request_timeout=300)
    finally:
        client.indices.put_settings(index=source, body={"index.blocks.write": None})
    return target


def shard_quality(one: SearchClient, sharded: SearchClient, shards: int, qrels: dict[str, dict[str, int]]) -> list[str]:
    """Markdown rows: BM25 and hybrid quality on one shard vs `shards` shards over `qrels` (query -> {id: grade})."""
    evaluations, overlaps = {}, {}
    for mode in ("bm25", "hybrid"):
        tops = {
            label: {q: [h.id for h in client.search(q, mode=mode).hits] for q in qrels}
            for label, client in (("one", one), ("sharded", sharded))
        }
        evaluations[mode] = {
            label: evaluate(
                {q: {pid: -rank for rank, pid in enumerate(ids)} for q, ids in top.items()},
                qrels,
                MetricConfig(threshold=1),
            )
            for label, top in tops.items()
        }
        overlaps[mode] = sum(
            len(set(tops["one"][q]) & set(tops["sharded"][q])) / max(1, len(tops["one"][q])) for q in qrels
        ) / len(qrels)
    tests = adjust(
        [
            paired_test(
                ev["one"].per_query["ndcg@10"],
                ev["sharded"].per_query["ndcg@10"],
                metric="ndcg@10",
                baseline_name=f"{mode}, 1 shard",
                system_name=f"{mode}, {shards} shards",
            )
            for mode, ev in evaluations.items()
        ]
    )
    rows = [
        f"| mode | NDCG@10, 1 shard | NDCG@10, {shards} shards | diff (Holm p) | R@24, 1 shard | R@24, {shards} "
        "shards | top-24 overlap |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for (mode, ev), test in zip(evaluations.items(), tests, strict=True):
        rows.append(
            f"| {mode} | {ev['one'].mean['ndcg@10']:.4f} | {ev['sharded'].mean['ndcg@10']:.4f} | "
            f"{test.mean_diff:+.4f} ({test.p_adjusted:.4f}) | {ev['one'].mean['recall@24']:.4f} | "
            f"{ev['sharded'].mean['recall@24']:.4f} | {overlaps[mode]:.2f} |"
        )
    return rows


class TwoRequestHybrid(SearchClient):
    """A client that reads hybrid pages as it must on indices without the display doc values: ids, then mget."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.transport.display_doc_values = False  # as on an index made before the template had them


def replace_client(search: SearchClient, kind: type[SearchClient] = SearchClient, **changes: Any) -> SearchClient:
    """A client like `search` (same cluster, alias, users index, encoder and settings) but for `changes`."""
    settings: dict[str, Any] = {
        "users_index": search.users_index,
        "personalization": search.personalization,
        "hybrid": search.hybrid,
        "cache_size": search.query_encoder.capacity,
    }
    alias = changes.pop("alias", search.alias)
    return kind(search.opensearch, alias, search.query_encoder.encoder, **(settings | changes))


def measure(
    runs: dict[str, Callable[[str, int], SearchResponse]],
    queries: Sequence[str],
    warm_up: Sequence[str],
    passes: int,
    seed: int,
) -> dict[str, LatencyStats]:
    """Run `warm_up`, then every query once per system per pass, the systems in a seeded random order for each
    query; latency stats per system."""
    for i, query in enumerate(warm_up):
        for run in runs.values():
            run(query, i)
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    order = list(runs)
    rng = random.Random(seed)
    for _ in range(passes):
        for i, query in enumerate(queries):
            rng.shuffle(order)
            for name in order:
                started = time.perf_counter()
                runs[name](query, i)
                seconds[name].append(time.perf_counter() - started)
    return {name: latency_stats(values) for name, values in seconds.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alias", required=True, help="product alias holding the full Icecat catalog")
    parser.add_argument("--encoder", default=DEFAULT_ENCODER, help="the encoder the index was built with")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--history", type=int, default=10, help="events per user")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--passes", type=int, default=3, help="times each query runs in each mode")
    parser.add_argument(
        "--split-shards",
        type=int,
        default=0,
        help="also time BM25 and hybrid on a copy split into this many primary shards (0: no copy)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    opensearch = OpenSearchConfig.from_env()
    client = make_client(opensearch)
    documents = client.count(index=args.alias)["count"]
    qrels = graded_qrels(load_judgments("icecat"))
    queries = sorted(qrels)
    users_index = f"latency-users-{uuid.uuid4().hex[:8]}"
    user_ids = write_load_test_users(client, args.alias, users_index, args.users, args.history, args.seed)
    split = (args.split_shards, split_copy(client, args.alias, args.split_shards)) if args.split_shards > 1 else None
    try:
        uncached = SearchClient(opensearch, args.alias, args.encoder, users_index=users_index, cache_size=0)
        cached = SearchClient(opensearch, args.alias, uncached.query_encoder.encoder, users_index=users_index)
        tables = {
            "query encoding included (cache off)": measure(
                systems(uncached, user_ids, split), queries, queries[:10], args.passes, args.seed
            ),
            "query vector cached (cluster side)": measure(
                systems(cached, user_ids, split), queries, queries, args.passes, args.seed
            ),
        }
        quality = shard_quality(cached, replace_client(cached, alias=split[1]), split[0], qrels) if split else []
    finally:
        client.indices.delete(index=[users_index, *([split[1]] if split else [])], ignore_unavailable=True)
    report = render(
        args, documents, len(queries), tables, os.getloadavg()[0], uncached.query_encoder.encoder.backend, quality
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(report)
    return 0


def render(
    args: argparse.Namespace,
    documents: int,
    n_queries: int,
    tables: dict[str, dict[str, LatencyStats]],
    load: float,
    backend: str,
    quality: Sequence[str] = (),
) -> str:
    hybrid = HybridConfig()
    lines = [
        "# Query latency by mode — Icecat",
        "",
        f"{n_queries} distinct real Icecat queries, each once per mode in each of {args.passes} passes (modes "
        "interleaved in a seeded random order per query) after a warm-up pass; one "
        f"client; {documents} products behind `{args.alias}`; encoder `{args.encoder}` ({backend}, CPU); k = 24; "
        f"hybrid = min-max {hybrid.weights[0]}/{hybrid.weights[1]} over {hybrid.depth} candidates per sub-query "
        "unless the row names another depth; "
        f"{args.users} simulated users with {args.history} events each for the rows with a user; their profiles "
        'are reused for 60 s (`user_ttl_s`) except in the "profile read" row, which reads it on every query, '
        "in the same request as the search. BM25 never encodes, so its "
        "rows match.",
    ]
    for title, stats in tables.items():
        base = stats["bm25"]
        lines += [
            "",
            f"## {title}",
            "",
            "| mode | p50 ms | p95 ms | mean ms | p50 / BM25 | p95 / BM25 |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, row in stats.items():
            lines.append(
                f"| {name} | {row.p50_ms:.1f} | {row.p95_ms:.1f} | {row.mean_ms:.1f} | "
                f"{row.p50_ms / base.p50_ms:.2f}x | {row.p95_ms / base.p95_ms:.2f}x |"
            )
    if quality:
        lines += [
            "",
            f"## Quality on {args.split_shards} shards (REAL judged Icecat queries, grade >= 1 relevant)",
            "",
            *quality,
        ]
    lines += [
        "",
        f"Run: `python benchmarks/query_latency.py --alias {args.alias} --encoder {args.encoder}"
        f"{f' --split-shards {args.split_shards}' if args.split_shards > 1 else ''}` on {platform.machine()} with "
        f"{os.cpu_count()} CPU cores shared with other work (1-minute load average at the end: {load:.1f}); "
        "the node runs on the same machine.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
