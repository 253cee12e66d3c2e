"""The served HTTP API under concurrent load: QPS, p50 / p95 / p99 and errors per mode and client count, and the
server's resident memory before and after, then a soak run that checks memory does not grow.

It starts `tbhns serve` itself (loopback only) against OPENSEARCH_URL, waits for /health, warms every mode
up, then for each mode and each client count runs closed-loop clients (each sends its next request when the
previous one answered) for `--seconds` or `--max-requests`, whichever ends first. Queries are the distinct
REAL shopper queries of the Icecat judgments (`--dataset` for another set with judgments), cycled in order;
personalized requests cycle through the users the server lists (`/compare/options`; none: they fall back), or,
with `--simulated-users N`, through N simulated users written to a temporary users index (deleted at the end).
`--user-ttl` is `tbhns serve --user-ttl`: 0 reads each user's profile on every search.
Latency is the client's wall time per request (HTTP, JSON, encoding, cluster); the clients are aiohttp
coroutines in this one process (`--client httpx` for the generator used until 2026-12-01). One uvicorn worker
(`tbhns serve`'s default) serving `--threads` searches at once; the onnxruntime and torch thread counts are
their defaults.

    OPENSEARCH_URL=http://127.0.0.1:9200 python benchmarks/load_api.py --alias icecat --encoder all-MiniLM-L6-v2

Writes benchmarks/results/load_api_<dataset>.md.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import httpx

from tbhns_opensearch.bench.latency import LatencyStats, latency_stats
from tbhns_opensearch.bench.load_test_users import write_load_test_users
from tbhns_opensearch.cluster import make_client
from tbhns_opensearch.config import OpenSearchConfig
from tbhns_opensearch.eval.queries import load_labelled_queries

RESULTS = Path(__file__).parent / "results"


def rss_mib(pid: int) -> float:
    """Resident memory of process `pid` in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def start_server(args: argparse.Namespace) -> subprocess.Popen[bytes]:
    tbhns = Path(sys.executable).parent / "tbhns"
    command = [
        str(tbhns),
        "serve",
        "--http-port",
        str(args.http_port),
        "--alias",
        args.alias,
        "--encoder",
        args.encoder,
        "--users-index",
        args.users_index,
        "--log-level",
        "warning",
        "--threads",
        str(args.threads),
        *(["--user-ttl", str(args.user_ttl)] if args.user_ttl is not None else []),
    ]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{args.http_port}/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if server.poll() is not None:
            raise SystemExit(f"tbhns serve exited with {server.returncode}; run it by hand to see why")
        time.sleep(0.5)
    server.kill()
    raise SystemExit("tbhns serve did not answer /health within 180 s")


Get = Callable[[str, dict[str, str | int]], Awaitable[bool]]
"""Send one GET, read the whole body, say whether it answered 200."""
HTTP_ERRORS = (aiohttp.ClientError, httpx.HTTPError, asyncio.TimeoutError)


@asynccontextmanager
async def http_client(kind: str, connections: int) -> AsyncIterator[Get]:
    """A pooled async HTTP client, `aiohttp` (the default) or `httpx`. httpx's pool costs the load generator
    more CPU per request as concurrency grows (encode/httpx#3215), CPU these 2 cores also give the server."""
    if kind == "aiohttp":
        connector = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:

            async def get_aiohttp(url: str, params: dict[str, str | int]) -> bool:
                async with session.get(url, params=params) as response:
                    await response.read()
                    return response.status == 200

            yield get_aiohttp
    else:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=connections), timeout=30) as http:

            async def get_httpx(url: str, params: dict[str, str | int]) -> bool:
                return (await http.get(url, params=params)).status_code == 200

            yield get_httpx


async def load(
    base: str,
    mode: str,
    clients: int,
    queries: list[str],
    users: list[str],
    seconds: float,
    max_requests: int,
    kind: str = "aiohttp",
) -> tuple[LatencyStats, int, int]:
    """Closed-loop `clients` against /search; returns the latency stats, the request count and the errors."""
    order = itertools.count()
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client(get: Get) -> None:
        nonlocal errors
        while time.perf_counter() < deadline and (i := next(order)) < max_requests:
            params: dict[str, str | int] = {"query": queries[i % len(queries)], "mode": mode, "k": 24}
            if mode == "personalized" and users:
                params["user_id"] = users[i % len(users)]
            began = time.perf_counter()
            try:
                ok = await get(f"{base}/search", params)
            except HTTP_ERRORS:
                ok = False
            latencies.append(time.perf_counter() - began)
            errors += not ok

    started = time.perf_counter()
    async with http_client(kind, clients) as get:
        await asyncio.gather(*(client(get) for _ in range(clients)))
    return latency_stats(latencies, wall_s=time.perf_counter() - started), len(latencies), errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alias", required=True)
    parser.add_argument("--encoder", default="all-MiniLM-L6-v2")
    parser.add_argument("--users-index", default="users")
    parser.add_argument(
        "--simulated-users",
        type=int,
        default=0,
        help="write this many simulated users to a temporary users index and personalize for them",
    )
    parser.add_argument("--user-ttl", type=float, help="tbhns serve --user-ttl (0: read the profile on every search)")
    parser.add_argument("--dataset", default="icecat", help="whose judged queries to send")
    parser.add_argument("--modes", nargs="+", default=["bm25", "semantic", "personalized", "hybrid"])
    parser.add_argument("--clients", nargs="+", type=int, default=[1, 4, 16, 64])
    parser.add_argument("--seconds", type=float, default=10.0, help="per mode and client count")
    parser.add_argument("--max-requests", type=int, default=3000, help="per mode and client count")
    parser.add_argument("--soak-seconds", type=float, default=60.0, help="the memory-growth run (hybrid, 16 clients)")
    parser.add_argument("--http-port", type=int, default=8123)
    parser.add_argument("--threads", type=int, default=16, help="tbhns serve --threads: searches served at once")
    parser.add_argument(
        "--client", choices=["aiohttp", "httpx"], default="aiohttp", help="the load generator's HTTP client"
    )
    parser.add_argument("--out", type=Path, help="the report [default: benchmarks/results/load_api_<dataset>.md]")
    args = parser.parse_args()

    queries = sorted({j.query for j in load_labelled_queries("judgments", args.dataset)})
    cluster = make_client(OpenSearchConfig.from_env())
    if args.simulated_users:
        args.users_index = f"load-users-{uuid.uuid4().hex[:8]}"
        write_load_test_users(cluster, args.alias, args.users_index, args.simulated_users)
    server = start_server(args)
    base = f"http://127.0.0.1:{args.http_port}"
    try:
        users = [u["user_id"] for u in httpx.get(f"{base}/compare/options", timeout=30).json()["users"]]
        for mode in args.modes:  # warm-up: model loaded, pipeline created, caches filled
            asyncio.run(load(base, mode, 1, queries, users, 60.0, len(queries), args.client))
        rss_before = rss_mib(server.pid)
        rows = []
        for mode in args.modes:
            for clients in args.clients:
                stats, n, errors = asyncio.run(
                    load(base, mode, clients, queries, users, args.seconds, args.max_requests, args.client)
                )
                rows.append((mode, clients, n, errors, stats))
                print(
                    f"{mode:13s} {clients:3d} clients: {stats.qps:7.1f} qps, p50 {stats.p50_ms:6.1f} ms, "
                    f"p99 {stats.p99_ms:6.1f} ms, {errors} errors",
                    flush=True,
                )
        rss_after = rss_mib(server.pid)
        soak_start = rss_mib(server.pid)
        soak, soak_n, soak_errors = asyncio.run(
            load(base, "hybrid", 16, queries, users, args.soak_seconds, 10**9, args.client)
        )
        soak_end = rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
        if args.simulated_users:
            cluster.indices.delete(index=args.users_index, ignore_unavailable=True)
    write(
        args, len(queries), len(users), rows, (rss_before, rss_after), (soak, soak_n, soak_errors, soak_start, soak_end)
    )


def write(
    args: argparse.Namespace, n_queries: int, n_users: int, rows: list, rss: tuple[float, float], soak: tuple
) -> None:  # type: ignore[type-arg]
    soak_stats, soak_n, soak_errors, soak_start, soak_end = soak
    lines = [
        f"# The HTTP API under load — {args.dataset}",
        "",
        f"`tbhns serve --threads {args.threads}` (one uvicorn worker serving {args.threads} searches at once, as many "
        f"pooled connections to the node) on loopback, alias `{args.alias}`, encoder `{args.encoder}`; "
        f"{n_queries} distinct **real** {args.dataset} judged queries cycled in order, k = 24; personalized "
        f"requests cycle through {n_users} {'simulated ' if args.simulated_users else ''}users of "
        f"`{args.users_index}` ({'none: they fall back to semantic' if not n_users else 'listed by the server'}; "
        "profiles "
        f"{'read on every search' if args.user_ttl == 0 else 'reused for ' + str(args.user_ttl or 60) + ' s'}). "
        f"Closed-loop clients ({args.client}, one process), each run {args.seconds:g} s or {args.max_requests} "
        f"requests; latency = client wall time per request. Machine: {platform.machine()}, {os.cpu_count()} cores, "
        "shared by the node, the server and the clients.",
        "",
        "| mode | clients | requests | errors | QPS | p50 ms | p95 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode, clients, n, errors, stats in rows:
        lines.append(
            f"| {mode} | {clients} | {n} | {errors} | {stats.qps:.1f} | {stats.p50_ms:.1f} | {stats.p95_ms:.1f} "
            f"| {stats.p99_ms:.1f} |"
        )
    lines += [
        "",
        f"Server RSS: {rss[0]:.0f} MiB after warm-up, {rss[1]:.0f} MiB after all runs above.",
        "",
        f"Soak (hybrid, 16 clients, {args.soak_seconds:g} s): {soak_n} requests, {soak_errors} errors, "
        f"{soak_stats.qps:.1f} QPS, p99 {soak_stats.p99_ms:.1f} ms; RSS {soak_start:.0f} -> {soak_end:.0f} MiB "
        f"({soak_end - soak_start:+.0f} MiB).",
        "",
        f"`OPENSEARCH_URL=... python benchmarks/load_api.py --alias {args.alias} --encoder {args.encoder} "
        f"--threads {args.threads} "
        f"--client {args.client} --modes {' '.join(args.modes)} --clients {' '.join(map(str, args.clients))}"
        + (f" --simulated-users {args.simulated_users}" if args.simulated_users else "")
        + (f" --user-ttl {args.user_ttl:g}" if args.user_ttl is not None else "")
        + "`",
        "",
    ]
    out = args.out or RESULTS / f"load_api_{args.dataset}.md"
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
