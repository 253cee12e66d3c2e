"""Personalization on real Instacart users: Recall@24 of held-out purchases, plain vs personalized query.

Protocol (real users only; nothing simulated):
- Catalog: Instacart's products (title | aisle, as `tbhns ingest` encodes them), encoded with `--encoder`.
- Users: every user with order lines in `order_products__prior.csv`. Purchase events are timed by order
  number. The last `--holdout` share of each user's last order (by add-to-cart order, at least one item) is
  held out as targets; every earlier purchase is the history. History length = purchases in the history.
- Queries: one per (user, aisle of a held-out product), the aisle name as text; its relevant set is the
  user's held-out products in that aisle.
- Retrieval: exact cosine search over the whole catalog (numpy), top 24: this measures the personalization
  rule (`users.profiles`), not the ANN index.
- Users are split by a seeded hash into validation (`--validation-share`) and test. alpha is chosen on the
  validation users (grid search of mean Recall@24); the table reports the test users only, by history length
  (0 / 1-4 / 5+), with a paired randomization test and bootstrap 95% CI of the difference per bucket.
- min_history is fixed (`--min-history`, default 3): below it the query is plain (fallback), and the table
  says how many queries fell back.

Run (about 2-3 minutes on 2 CPU cores, all users, no subsampling unless `--max-users`):
    python benchmarks/personalization_instacart.py
It writes benchmarks/results/personalization_instacart.md (aggregate numbers only; no Instacart records).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from tbhns_opensearch.bench.breakdown import HISTORY_BUCKETS, history_bucket
from tbhns_opensearch.catalog.adapters import dataset_dir, read_dataset
from tbhns_opensearch.encoder import DEFAULT_ENCODER, Encoder
from tbhns_opensearch.eval.significance import paired_test
from tbhns_opensearch.users.blend import personalize
from tbhns_opensearch.users.profiles import PersonalizationConfig, UserProfile, build_user_profiles
from tbhns_opensearch.users.sources import UserQuery, aisle_queries, instacart_holdout, split_users
from tbhns_opensearch.users.tuning import ALPHA_GRID, PersonalizationCase, recall_at_k, tune_alpha

K = 24
RESULTS = Path(__file__).parent / "results" / "personalization_instacart.md"


def build_cases(
    queries: Sequence[UserQuery], aisle_vectors: dict[str, np.ndarray], profiles: dict[str, UserProfile]
) -> list[PersonalizationCase]:
    """One case per user query: the aisle's vector, the user's profile, the held-out targets."""
    return [PersonalizationCase(q.user_id, aisle_vectors[q.text], profiles.get(q.user_id), q.targets) for q in queries]


def bucket_rows(
    cases: Sequence[PersonalizationCase],
    plain: np.ndarray,
    personal: np.ndarray,
    history_length: dict[str, int],
    config: PersonalizationConfig,
    seed: int,
) -> list[dict[str, Any]]:
    """Per history bucket (and "all"): sizes, fallbacks, mean Recall@K of both, and a paired test."""
    fell_back = [personalize(case.query_vector, case.user_id, case.profile, config).fallback for case in cases]
    rows = []
    for name in (*HISTORY_BUCKETS, "all"):
        chosen = [i for i, case in enumerate(cases) if name in ("all", history_bucket(history_length[case.user_id]))]
        row: dict[str, Any] = {
            "bucket": name,
            "users": len({cases[i].user_id for i in chosen}),
            "queries": len(chosen),
            "fallback": sum(fell_back[i] for i in chosen),
            "plain": float(plain[chosen].mean()) if chosen else float("nan"),
            "personal": float(personal[chosen].mean()) if chosen else float("nan"),
        }
        if len(chosen) >= 2:
            stats = paired_test(
                {str(i): float(plain[i]) for i in chosen},
                {str(i): float(personal[i]) for i in chosen},
                metric=f"recall@{K}",
                seed=seed,
            )
            row.update(diff=stats.mean_diff, ci=(stats.ci_low, stats.ci_high), p=stats.p_rand)
        rows.append(row)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="Instacart folder [default: ../shared/data/instacart]"
    )
    parser.add_argument("--encoder", default=DEFAULT_ENCODER, help="encoder path or name")
    parser.add_argument("--backend", default=None, help="encoder backend [default: onnx when exported, else torch]")
    parser.add_argument("--holdout", type=float, default=0.5, help="share of the last order held out")
    parser.add_argument("--validation-share", type=float, default=0.3, help="share of users used to tune alpha")
    parser.add_argument("--min-history", type=int, default=3)
    parser.add_argument("--half-life", type=float, default=5.0, help="recency half-life in orders")
    parser.add_argument("--max-users", type=int, default=None, help="subsample this many users (seeded)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started = time.perf_counter()

    data_dir = dataset_dir("instacart", args.data_dir)
    products = list(read_dataset("instacart", data_dir))
    encoder = Encoder(args.encoder, backend=args.backend or "auto", batch_size=128)
    product_ids = [product.id for product in products]
    matrix = encoder.encode([product.text_for_embedding() for product in products])  # (n_products, dim)
    vectors = dict(zip(product_ids, matrix))
    aisle_of = {product.id: product.taxonomy_path[-1] for product in products if product.taxonomy_path}
    aisles = sorted(set(aisle_of.values()))
    aisle_vectors = dict(zip(aisles, encoder.encode(aisles)))  # aisle name -> (dim,)
    encoded_s = time.perf_counter() - started

    users = instacart_holdout(data_dir, args.holdout)
    total_users = len(users)
    if args.max_users is not None and args.max_users < total_users:
        users = sorted(random.Random(args.seed).sample(users, args.max_users), key=lambda user: user.user_id)
    config = PersonalizationConfig(
        event_weights={"purchase": 1.0}, half_life=args.half_life, min_history=args.min_history
    )
    profiles = build_user_profiles([event for user in users for event in user.history], vectors, config)
    validation, test = split_users(users, args.validation_share, args.seed)
    validation_cases = build_cases(aisle_queries(validation, aisle_of), aisle_vectors, profiles)
    test_cases = build_cases(aisle_queries(test, aisle_of), aisle_vectors, profiles)

    tuning = tune_alpha(validation_cases, product_ids, matrix, config, ALPHA_GRID, K)
    plain = recall_at_k(test_cases, product_ids, matrix, replace(config, alpha=0.0), K)
    personal = recall_at_k(test_cases, product_ids, matrix, replace(config, alpha=tuning.best_alpha), K)
    history_length = {user.user_id: len(user.history) for user in users}
    rows = bucket_rows(test_cases, plain, personal, history_length, config, args.seed)
    seconds = time.perf_counter() - started
    report = render(
        args,
        rows,
        tuning.recall,
        tuning.best_alpha,
        total_users,
        len(users),
        len(validation),
        len(validation_cases),
        len(test),
        len(test_cases),
        encoded_s,
        seconds,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(report)
    return 0


def render(
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    curve: dict[float, float],
    best: float,
    total_users: int,
    used_users: int,
    n_validation: int,
    n_validation_cases: int,
    n_test: int,
    n_test_cases: int,
    encoded_s: float,
    seconds: float,
) -> str:
    sample = (
        "all users, no subsampling"
        if used_users == total_users
        else f"a seeded random subsample of {used_users} of {total_users} users (--max-users)"
    )
    lines = [
        "# Personalization on Instacart — real users",
        "",
        f"Recall@{K} of held-out purchases, plain query vs personalized query vector "
        f"`normalize((1 - a) q + a u)`, on **real Instacart users** ({sample}). Protocol: see the docstring of "
        "`benchmarks/personalization_instacart.py`. Queries are aisle names; retrieval is exact cosine search "
        "over the whole Instacart catalog.",
        "",
        f"- Encoder: `{args.encoder}`; min_history = {args.min_history} purchases (below it: plain query, "
        f"fallback); recency half-life = {args.half_life:g} orders; held out: last {args.holdout:.0%} of each "
        "user's last order.",
        f"- Users: {used_users} ({n_validation} validation / {n_test} test, split by seeded hash); queries: "
        f"{n_validation_cases} validation / {n_test_cases} test.",
        f"- alpha tuned on validation users: **a = {best:g}** "
        f"(validation Recall@{K} by a: " + ", ".join(f"{a:g}: {r:.4f}" for a, r in curve.items()) + ").",
        "",
        "## Test users, by history length (purchases before the held-out items)",
        "",
        f"| history | users | queries | fell back | Recall@{K} plain | Recall@{K} personalized (a={best:g}) "
        "| difference [95% CI] | p (randomization) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        diff = f"{row['diff']:+.4f} [{row['ci'][0]:+.4f}, {row['ci'][1]:+.4f}]" if "diff" in row else "n/a"
        p_value = f"{row['p']:.4f}" if "p" in row else "n/a"
        lines.append(
            f"| {row['bucket']} | {row['users']} | {row['queries']} | {row['fallback']} | {row['plain']:.4f} "
            f"| {row['personal']:.4f} | {diff} | {p_value} |"
        )
    lines += [
        "",
        "Users in bucket 0 have no history, and users below min_history fall back to the plain query, so their",
        "personalized and plain results are identical by construction (the fallback returns the plain vector).",
        "",
        f"Run: `python benchmarks/personalization_instacart.py` — {seconds:.0f} s wall "
        f"({encoded_s:.0f} s encoding) on {platform.machine()} with {os.cpu_count()} CPU cores.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
