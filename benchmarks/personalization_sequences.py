"""Offline ablation of personalization on order sequences: plain, fixed blend, learned attention, a rule.

Protocol (`tbhns_opensearch.users.sequences`): REAL users of an order-lines file (Instacart's layout), each
split at their whole LAST order; the history is every earlier order. A query is an aisle (DERIVED from the
category of a product of the last order, not typed by a shopper); its relevant products are that order's
products in the aisle. Users are split train / validation / test by a seeded hash of the user id.

Systems, all by exact cosine search (numpy) over the named products of the file, encoded once with the frozen
base encoder (vectors cached under `--cache-dir`, never in the repository):
- `plain`: the query vector.
- `blend`: `normalize((1 - a) q + a u)`, u the recency-weighted mean of the history (`users.profiles`,
  half-life `--half-life` orders); a tuned on validation users (`users.tuning.tune_alpha`, Recall@24).
- `learned`: the attention user model (`users.attention`), trained on the train users' orders
  (`users.attention_training`), the epoch kept on validation users.
- `learned-untrained`: the same model at its initial weights (no training).
- `rule`: the user's past purchases in the queried aisle first (most recent first), then the plain ranking.

Cells: all queries; history length 5-19 and 20+ orders; histories cut to the last 0/1/2/4 orders; targets
bought before by that user (repurchase) vs never (cold), scored on that part of each query's targets.
Paired tests: per USER (each user's queries averaged first, then paired by user; the primary test) and per
query, randomization test with Holm correction over every comparison of the report.

Run (about 5 minutes on 2 CPU cores the first time, encoding included):
    python benchmarks/personalization_sequences.py --out benchmarks/results/instacart-sequences-offline.md
With `--split all`, every user of the file is evaluated with a model saved by an earlier run (`--model-dir`).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Mapping, Sequence  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tbhns_opensearch.catalog.adapters import read_dataset  # noqa: E402
from tbhns_opensearch.catalog.product import Product  # noqa: E402
from tbhns_opensearch.encoder import DEFAULT_ENCODER, Encoder  # noqa: E402
from tbhns_opensearch.eval.metrics import evaluate  # noqa: E402
from tbhns_opensearch.eval.runs import Run  # noqa: E402
from tbhns_opensearch.eval.significance import PairedTest, adjust, cluster_means, paired_test  # noqa: E402
from tbhns_opensearch.users.attention import (  # noqa: E402
    USER_MODEL_DIR,
    UserAttention,
    load_user_model,
    personalize_queries,
    save_user_model,
)
from tbhns_opensearch.users.attention_training import (  # noqa: E402
    METRICS,
    AttentionTrainConfig,
    OrderQuery,
    ProductSpace,
    TrainedUserModel,
    exact_run,
    order_queries,
    qrels_of,
    train_user_model,
)
from tbhns_opensearch.users.blend import personalize  # noqa: E402
from tbhns_opensearch.users.profiles import PersonalizationConfig, build_user_profiles  # noqa: E402
from tbhns_opensearch.users.sequences import (  # noqa: E402
    QUERY_FORMS,
    SequenceUser,
    cut_history,
    held_out_user,
    named_products,
    read_order_sequences,
    select_users,
)
from tbhns_opensearch.users.tuning import ALPHA_GRID, PersonalizationCase, tune_alpha  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SHOWN = ("recall@10", "recall@24", "recall@100", "ndcg@10")
TESTED = ("recall@24", "ndcg@10")
BASE_SYSTEMS = ("plain", "blend", "learned", "learned-untrained", "rule")
TBHNS_SYSTEMS = ("tbhns", "combined")  # with --tbhns-encoder
BASE_COMPARISONS = (("learned", "blend"), ("learned", "plain"), ("learned", "rule"), ("blend", "plain"))
TBHNS_COMPARISONS = (("tbhns", "plain"), ("combined", "learned"), ("combined", "tbhns"), ("combined", "blend"))
CUTS = (0, 1, 2, 4)


@dataclass(frozen=True)
class Cell:
    """One row group of the report: its queries (histories possibly cut) and the qrels they are scored on."""

    name: str
    queries: list[OrderQuery]
    users: list[SequenceUser]
    qrels: dict[str, dict[str, int]]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    catalog = list(read_dataset("instacart", args.products.parent if args.products.is_file() else args.products))
    data = read_order_sequences(args.order_lines, catalog)
    space, encode_s = _space(data.users, catalog, args)
    splits = {name: select_users(data.users, name, seed=args.seed) for name in ("train", "validation", "test")}
    evaluated = data.users if args.split == "all" else splits[args.split]
    personalization = PersonalizationConfig(event_weights={"purchase": 1.0}, half_life=args.half_life, min_history=1)

    trained, alpha = _models(args, splits, space, personalization)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        untrained = UserAttention(trained.model.config if trained else _train_config(args).model)
    learned = trained.model if trained else load_user_model(args.model_dir)
    personalization = replace(personalization, alpha=alpha)
    tbhns = _tbhns_arm(args, data.users, catalog, splits, space) if args.tbhns_encoder else None
    systems = _systems(space, learned, personalization, tbhns)
    systems["learned-untrained"] = lambda cell: _model_run(untrained, cell, space)
    systems["rule"] = lambda cell: _rule_run(cell, space)
    cells = _cells(evaluated, space)
    scores = {
        cell.name: {name: evaluate(run(cell), cell.qrels, METRICS).per_query for name, run in systems.items()}
        for cell in cells
    }
    path_cell = _path_cell(evaluated, space)
    path_scores = {
        name: evaluate(systems[name](path_cell), path_cell.qrels, METRICS).per_query
        for name in ("plain", "blend", "learned", "rule", *(TBHNS_SYSTEMS if tbhns else ()))
    }
    sample = _sample_study(args, catalog, learned, personalization, tbhns) if args.sample_dir else None
    comparisons = BASE_COMPARISONS + (TBHNS_COMPARISONS if tbhns else ())
    tests = _tests(cells, scores, comparisons, args.seed)
    report = _render(
        args,
        data,
        splits,
        evaluated,
        space,
        cells,
        scores,
        path_cell,
        path_scores,
        tests,
        trained,
        alpha,
        encode_s,
        time.perf_counter() - started,
        argv,
        tbhns,
        sample,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(report)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--order-lines",
        type=Path,
        default=DATA / "instacart-sequences" / "order_lines.csv",
        help="order-lines CSV in Instacart's layout [default: ../shared/data/instacart-sequences/]",
    )
    parser.add_argument(
        "--products",
        type=Path,
        default=DATA / "instacart",
        help="Instacart products.csv (or its folder) that names the products",
    )
    parser.add_argument(
        "--split",
        choices=("test", "validation", "all"),
        default="test",
        help="users evaluated; 'all' needs --model-dir from an earlier run",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path("/tmp/tbhns-sequences-cache"),
        help="product and query vectors (and the trained model) are cached here; never the repo",
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="load the user model (and the blend's a) from here instead of training one",
    )
    parser.add_argument("--encoder", default=DEFAULT_ENCODER)
    parser.add_argument(
        "--tbhns-encoder",
        type=Path,
        default=None,
        help="a TB-HNS-trained encoder directory (`tbhns train`): adds `tbhns` (its plain query) and "
        "`combined` (its user_model/, else one trained here on its vectors)",
    )
    parser.add_argument(
        "--sample-dir",
        type=Path,
        default=None,
        help="the Instacart sample folder (orders.csv, order_products__prior.csv): its users, mostly "
        "one prior order, evaluated with the same models (never trained on)",
    )
    parser.add_argument("--half-life", type=float, default=5.0, help="blend: recency half-life in orders")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="torch device for training (cpu, cuda)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=Path("/tmp/instacart-sequences-offline.md"))
    return parser


def _space(
    users: Sequence[SequenceUser], catalog: Sequence[Product], args: argparse.Namespace, encoder: str | None = None
) -> tuple[ProductSpace, float]:
    """The named products of `users` (sorted by id) and every query text, encoded once (with `encoder`, default
    `--encoder`) and cached."""
    encoder_name = str(encoder or args.encoder)
    products = sorted(named_products(users, catalog), key=lambda p: (len(p.id), p.id))
    paths = sorted({p.taxonomy_path for p in products if p.taxonomy_path})
    texts = sorted({form(path) for form in QUERY_FORMS.values() for path in paths})
    product_texts = [p.text_for_embedding() for p in products]
    fingerprint = _fingerprint(encoder_name)  # a model name keeps the key of the runs before it had one
    keyed = [encoder_name, product_texts, texts] + ([fingerprint] if fingerprint else [])
    key = hashlib.sha256(json.dumps(keyed).encode()).hexdigest()[:16]
    cached = args.cache_dir / f"vectors-{key}.npz"
    started = time.perf_counter()
    if cached.is_file():
        stored = np.load(cached)
        matrix, query_matrix = stored["products"], stored["queries"]
    else:
        encoder = Encoder(encoder_name, batch_size=128)
        matrix, query_matrix = encoder.encode(product_texts), encoder.encode(texts)  # (n, dim) unit rows
        args.cache_dir.mkdir(parents=True, exist_ok=True)
        np.savez(cached, products=matrix, queries=query_matrix)
    space = ProductSpace(tuple(products), matrix.astype(np.float32), dict(zip(texts, query_matrix.astype(np.float32))))
    return space, time.perf_counter() - started


def _fingerprint(encoder: str) -> str:
    """Modification time of a directory encoder's weights ('' for a model name), so a retrained one is re-encoded."""
    weights = sorted(Path(encoder).glob("*.safetensors")) if Path(encoder).is_dir() else []
    return ",".join(f"{w.name}:{w.stat().st_mtime_ns}" for w in weights)


@dataclass(frozen=True)
class TbhnsArm:
    """The TB-HNS encoder's product space and the user model on its vectors (the combined model)."""

    space: ProductSpace
    combined: UserAttention
    source: str  # where the combined user model came from
    encode_s: float


def _tbhns_arm(
    args: argparse.Namespace,
    users: Sequence[SequenceUser],
    catalog: Sequence[Product],
    splits: Mapping[str, list[SequenceUser]],
    base: ProductSpace,
) -> TbhnsArm:
    """Encode with `--tbhns-encoder`; the combined model is its `user_model/`, else trained here (same budget)."""
    space, encode_s = _space(users, catalog, args, str(args.tbhns_encoder))
    if space.ids != base.ids:
        raise SystemExit("the TB-HNS space must hold the same products as the base one")
    stored = args.tbhns_encoder / USER_MODEL_DIR
    if (stored / "user_model.json").is_file():
        return TbhnsArm(space, load_user_model(stored), f"`{stored}` (trained by `tbhns train`)", encode_s)
    trained = train_user_model(
        order_queries(splits["train"], space, every_order=True),
        order_queries(splits["validation"], space),
        space,
        _train_config(args),
    )
    return TbhnsArm(space, trained.model, f"trained here on its vectors ({trained.train_seconds:.0f} s)", encode_s)


def _systems(
    space: ProductSpace,
    learned: UserAttention,
    personalization: PersonalizationConfig,
    tbhns: TbhnsArm | None,
    tbhns_space: ProductSpace | None = None,
) -> dict[str, Callable[[Cell], Run]]:
    """plain, blend and learned on `space`; tbhns and combined on the TB-HNS space (`tbhns_space` overrides it)."""
    systems: dict[str, Callable[[Cell], Run]] = {
        "plain": lambda cell: _plain_run(cell, space),
        "blend": lambda cell: _blend_run(cell, space, personalization),
        "learned": lambda cell: _model_run(learned, cell, space),
    }
    if tbhns is not None:
        other = tbhns_space or tbhns.space
        systems["tbhns"] = lambda cell: _plain_run(cell, other)
        systems["combined"] = lambda cell: _model_run(tbhns.combined, cell, other)
    return systems


def _sample_users(directory: Path, cache_dir: Path, catalog: Sequence[Product]) -> list[SequenceUser]:
    """The Instacart sample's users split at their whole last order: its orders joined into an order-lines
    file under `cache_dir` (derived from Instacart: never in the repository) and read as sequences."""
    orders = {row["order_id"]: row for row in csv.DictReader((directory / "orders.csv").open())}
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / "sample_order_lines.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ("order_id", "user_id", "order_number", "days_since_prior_order", "product_id", "add_to_cart_order")
        )
        for line in csv.DictReader((directory / "order_products__prior.csv").open()):
            order = orders.get(line["order_id"])
            if order is not None:
                writer.writerow(
                    (
                        line["order_id"],
                        order["user_id"],
                        order["order_number"],
                        order["days_since_prior_order"],
                        line["product_id"],
                        line["add_to_cart_order"],
                    )
                )
    return list(read_order_sequences(path, catalog).users)


@dataclass(frozen=True)
class SampleStudy:
    """The Instacart sample's users scored by every model, grouped by history length in orders."""

    users: int
    products: int
    cells: list[Cell]
    scores: dict[str, dict[str, dict[str, dict[str, float]]]]
    tests: dict[str, list[tuple[str, PairedTest]]]


def _sample_study(
    args: argparse.Namespace,
    catalog: Sequence[Product],
    learned: UserAttention,
    personalization: PersonalizationConfig,
    tbhns: TbhnsArm | None,
) -> SampleStudy:
    """Score the sample's users (never trained on) over the sample's own named products."""
    users = _sample_users(args.sample_dir, args.cache_dir, catalog)
    space, _ = _space(users, catalog, args)
    tbhns_space = _space(users, catalog, args, str(args.tbhns_encoder))[0] if tbhns else None
    systems = _systems(space, learned, personalization, tbhns, tbhns_space)
    queries = order_queries(users, space)
    by_id = {u.user_id: u for u in users}
    cells = []
    for name, keep in (
        ("all", lambda n: True),
        ("no prior order", lambda n: n == 0),
        ("1 prior order", lambda n: n == 1),
        ("2+ prior orders", lambda n: n >= 2),
    ):
        chosen = [q for q in queries if keep(q.history_orders)]
        if len({q.user_id for q in chosen}) >= 2:  # a paired test needs two users
            cells.append(
                Cell(name, chosen, [by_id[u] for u in sorted({q.user_id for q in chosen})], qrels_of(chosen, space))
            )
    scores = {
        cell.name: {name: evaluate(run(cell), cell.qrels, METRICS).per_query for name, run in systems.items()}
        for cell in cells
    }
    pairs = tuple((system, baseline) for system in systems for baseline in ("plain",) if system != baseline)
    return SampleStudy(len(users), len(space.products), cells, scores, _tests(cells, scores, pairs, args.seed))


def _train_config(args: argparse.Namespace) -> AttentionTrainConfig:
    return AttentionTrainConfig(epochs=args.epochs, seed=args.seed, device=args.device)


def _models(
    args: argparse.Namespace,
    splits: Mapping[str, list[SequenceUser]],
    space: ProductSpace,
    personalization: PersonalizationConfig,
) -> tuple[TrainedUserModel | None, float]:
    """Train the user model and tune a on validation users, or read both from `--model-dir`."""
    if args.model_dir is not None:
        return None, json.loads((args.model_dir / "blend.json").read_text())["alpha"]
    if args.split == "all":
        raise SystemExit(
            "--split all evaluates every user, training users included: pass --model-dir with a "
            "model saved by an earlier run (it is written to <cache-dir>/user-model)"
        )
    validation = order_queries(splits["validation"], space)
    trained = train_user_model(
        order_queries(splits["train"], space, every_order=True), validation, space, _train_config(args)
    )
    alpha = tune_alpha(
        _blend_cases(validation, splits["validation"], space, personalization),
        space.ids,
        space.matrix,
        personalization,
        ALPHA_GRID,
        k=24,
    ).best_alpha
    model_dir = save_user_model(trained.model, args.cache_dir / "user-model")
    (model_dir / "blend.json").write_text(json.dumps({"alpha": alpha, "half_life": args.half_life}) + "\n")
    return trained, alpha


def _cells(users: Sequence[SequenceUser], space: ProductSpace) -> list[Cell]:
    queries = order_queries(users, space)
    by_id = {u.user_id: u for u in users}

    def cell(name: str, chosen: list[OrderQuery], cut: int | None = None) -> Cell:
        kept = {q.user_id for q in chosen}
        cell_users = [by_id[u] if cut is None else cut_history(by_id[u], cut) for u in sorted(kept)]
        if cut is not None:
            chosen = order_queries(cell_users, space)
        return Cell(name, chosen, cell_users, qrels_of(chosen, space))

    cells = [
        cell("all", queries),
        cell("history 5-19 orders", [q for q in queries if 5 <= q.history_orders <= 19]),
        cell("history 20+ orders", [q for q in queries if q.history_orders >= 20]),
    ]
    cells += [cell(f"history cut to last {k} orders", queries, cut=k) for k in CUTS]
    for name, repurchase in (("repurchase targets", True), ("cold targets", False)):
        qrels = {}
        for q in queries:
            bought = {row for row, _ in q.history}
            part = {space.products[r].id: 1 for r in q.relevant if (r in bought) == repurchase}
            if part:
                qrels[q.qid] = part
        cells.append(replace(cells[0], name=name, queries=[q for q in queries if q.qid in qrels], qrels=qrels))
    return cells


def _path_cell(users: Sequence[SequenceUser], space: ProductSpace) -> Cell:
    queries = order_queries(users, space, form="path")
    return Cell("all, department > aisle", queries, list(users), qrels_of(queries, space))


def _plain_run(cell: Cell, space: ProductSpace) -> Run:
    return exact_run(space.query_matrix(cell.queries), [q.qid for q in cell.queries], space)


def _model_run(model: UserAttention, cell: Cell, space: ProductSpace) -> Run:
    vectors = personalize_queries(
        model, space.query_matrix(cell.queries), [q.history for q in cell.queries], space.matrix
    )
    return exact_run(vectors, [q.qid for q in cell.queries], space)


def _blend_cases(
    queries: Sequence[OrderQuery], users: Sequence[SequenceUser], space: ProductSpace, config: PersonalizationConfig
) -> list[PersonalizationCase]:
    """Each query with the user's profile (recency-weighted mean of the history, `users.profiles`)."""
    vectors = dict(zip(space.ids, space.matrix))
    events = [event for user in users for event in held_out_user(user).history]
    profiles = build_user_profiles(events, vectors, config)
    query_vectors = space.query_matrix(queries)
    return [
        PersonalizationCase(q.user_id, v, profiles.get(q.user_id), frozenset(space.products[r].id for r in q.relevant))
        for q, v in zip(queries, query_vectors)
    ]


def _blend_run(cell: Cell, space: ProductSpace, config: PersonalizationConfig) -> Run:
    cases = _blend_cases(cell.queries, cell.users, space, config)
    vectors = np.stack([personalize(c.query_vector, c.user_id, c.profile, config).vector for c in cases])
    return exact_run(vectors.astype(np.float32), [q.qid for q in cell.queries], space)


def _rule_run(cell: Cell, space: ProductSpace, k: int = 100) -> Run:
    """Past purchases in the queried aisle (most recent first), then the plain ranking; scores by rank."""
    plain = _plain_run(cell, space)
    text_of = {
        row: {form(p.taxonomy_path) for form in QUERY_FORMS.values()}
        for row, p in enumerate(space.products)
        if p.taxonomy_path
    }
    run = {}
    for q in cell.queries:
        bought = [space.products[row].id for row, _ in q.history if q.text in text_of.get(row, ())]
        ranked = list(dict.fromkeys(bought)) + [d for d, _ in sorted(plain[q.qid].items(), key=lambda x: (-x[1], x[0]))]
        ranked = list(dict.fromkeys(ranked))[:k]
        run[q.qid] = {doc: float(k - i) for i, doc in enumerate(ranked)}
    return run


def _per_user(scores: Mapping[str, float]) -> dict[str, float]:
    """qid (user/target/text) -> score, averaged per user."""
    return cluster_means(scores, lambda qid: qid.split("/", 1)[0])


def _tests(
    cells: Sequence[Cell],
    scores: Mapping[str, Mapping[str, Mapping[str, Mapping[str, float]]]],
    comparisons: Sequence[tuple[str, str]],
    seed: int,
) -> dict[str, list[tuple[str, PairedTest]]]:
    """Per user (primary) and per query, each family Holm-corrected over every cell, pair and metric."""
    families: dict[str, list[tuple[str, PairedTest]]] = {"per user": [], "per query": []}
    for cell in cells:
        per = scores[cell.name]
        for system, baseline in comparisons:
            for metric in TESTED:
                for family, view in (("per user", _per_user), ("per query", dict)):
                    test = paired_test(
                        view(per[baseline][metric]),
                        view(per[system][metric]),
                        metric=metric,
                        baseline_name=baseline,
                        system_name=system,
                        seed=seed,
                    )
                    families[family].append((cell.name, test))
    for family, tests in families.items():
        families[family] = list(zip([c for c, _ in tests], adjust([t for _, t in tests], "holm")))
    return families


def _row(cell: str, queries: int, users: int, system: str, per: Mapping[str, Mapping[str, float]]) -> str:
    means = " | ".join(f"{np.mean(list(per[m].values())):.3f}" for m in SHOWN)
    return f"| {cell} | {queries} | {users} | {system} | {means} |"


def _render(
    args: argparse.Namespace,
    data,
    splits,
    evaluated,
    space,
    cells,
    scores,
    path_cell,
    path_scores,
    tests,
    trained,
    alpha,
    encode_s,
    seconds,
    argv,
    tbhns,
    sample,
) -> str:  # type: ignore[no-untyped-def]
    split = args.split.upper()
    command = "python " + " ".join(
        shlex.quote(a) for a in ["benchmarks/personalization_sequences.py", *(sys.argv[1:] if argv is None else argv)]
    )
    lines = [
        f"# Personalization on order sequences, offline: {split} users, REAL histories, DERIVED aisle queries",
        "",
        "**Data.** REAL Instacart users of `instacart-sequences/order_lines.csv` (`../shared/data/README.md`, "
        "non-commercial: only these aggregate figures are committed). Each user's whole LAST order is held out; "
        "the history is every earlier order. Queries are DERIVED from categories (the aisle of a product of the "
        "last order), not typed by shoppers; relevant = that order's products in the aisle.",
        f"- lines read {data.lines_read:,}, dropped for want of a product name {data.lines_dropped:,} "
        f"({data.lines_dropped / data.lines_read:.1%}); users {len(data.users)}: "
        + ", ".join(f"{name} {len(users)}" for name, users in splits.items())
        + f" (seeded hash of the user id, seed {args.seed}); evaluated: **{args.split}** ({len(evaluated)} users). "
        "The test split is read once; a and the epoch are chosen on validation users.",
        f"- candidates: the {len(space.products):,} named products of the file; **exact** cosine search (numpy), "
        f"top 100; frozen base encoder `{args.encoder}` ({encode_s:.0f} s to encode or read the cache).",
        f"- blend: `normalize((1 - a) q + a u)`, u = recency-weighted mean of the history (half-life "
        f"{args.half_life:g} orders), **a = {alpha:g}** tuned on validation Recall@24 over {list(ALPHA_GRID)}.",
        "- learned: attention over the last 50 purchases with the query as attention query, a zero "
        "(no-personalization) slot, recency buckets; trained contrastively (in-batch + 8 same-aisle + 4 "
        "sibling-aisle TB-HNS negatives, never from the target order) on the train users' orders, every order with "
        "an older one as a target; product vectors frozen. learned-untrained: the same model at its initial weights.",
        "- rule: the user's past purchases in the queried aisle first, most recent first, then the plain ranking.",
    ]
    systems = BASE_SYSTEMS + (TBHNS_SYSTEMS if tbhns else ())
    if tbhns is not None:
        lines.append(
            f"- tbhns: the plain query on `{args.tbhns_encoder}` (TB-HNS-trained encoder, {tbhns.encode_s:.0f} s "
            f"to encode or read the cache); combined: the learned user model on its vectors, {tbhns.source}."
        )
    if trained is not None:
        best = trained.log[trained.best_epoch]
        lines += [
            f"- training: {trained.train_examples:,} examples, {len(trained.log) - 1} epochs, "
            f"**{trained.train_seconds:.0f} s** on {args.device} ({args.threads} torch thread, "
            f"{platform.machine()}, {os.cpu_count()} cores, beside other work); epoch kept: {trained.best_epoch} "
            f"(validation Recall@24 {best.validation['recall@24']:.3f}).",
            "",
            "| epoch | training loss | validation R@10 | R@24 | R@100 | NDCG@10 | seconds |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {e.epoch} | {e.loss:.4f} | "
            + " | ".join(f"{e.validation[m]:.3f}" for m in SHOWN)
            + f" | {e.seconds:.0f} |"
            for e in trained.log
        ]
    else:
        lines.append(f"- user model and a read from `{args.model_dir}` (trained by an earlier run).")
    lines += [
        "",
        f"## {split} users, DERIVED aisle queries",
        "",
        "| cell | queries | users | system | R@10 | R@24 | R@100 | NDCG@10 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for cell in cells:
        n_users = len({q.user_id for q in cell.queries})
        lines += [_row(cell.name, len(cell.queries), n_users, name, scores[cell.name][name]) for name in systems]
    lines += [
        "",
        "Repurchase / cold: each query scored on the part of its targets the user bought before / never "
        "bought; queries without such targets are left out.",
        "",
        f"## {split} users, DERIVED department > aisle queries (the model was trained on aisle queries)",
        "",
        "| cell | queries | users | system | R@10 | R@24 | R@100 | NDCG@10 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    n_users = len({q.user_id for q in path_cell.queries})
    lines += [_row("all", len(path_cell.queries), n_users, name, per) for name, per in path_scores.items()]
    lines += [
        "",
        f"## Paired tests, {split} users, aisle queries",
        "",
        "Randomization test (10,000 sign flips), two-sided; Holm over all "
        f"{len(tests['per user'])} comparisons of each family. **Per user** (primary): each user's queries "
        "averaged first, then paired by user. Per query: paired by query. ▲/▼: significant at 0.05 (Holm).",
        "",
        "| cell | system vs baseline | metric | diff | rel | users | p per user (Holm) | queries | "
        "p per query (Holm) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (cell, user_test), (_, query_test) in zip(tests["per user"], tests["per query"]):
        base = np.mean(list(scores[cell][user_test.baseline][user_test.metric].values()))
        mark = ("▲" if user_test.mean_diff > 0 else "▼") if user_test.significant else ""
        rel = f"{query_test.mean_diff / base:+.1%}" if base else "n/a"
        lines.append(
            f"| {cell} | {user_test.system} vs {user_test.baseline} | {user_test.metric} | "
            f"{query_test.mean_diff:+.3f} | {rel} | {user_test.n} | {user_test.p_adjusted:.4f} {mark} | "
            f"{query_test.n} | {query_test.p_adjusted:.4f} |"
        )
    lines += ["", "diff and rel: mean over queries (system - baseline), relative to the baseline's mean."]
    if sample is not None:
        lines += [
            "",
            "## Instacart sample users (REAL, mostly one prior order), DERIVED aisle queries",
            "",
            f"`{args.sample_dir}`: {sample.users} users split at their whole last order, never trained on; "
            f"exact search over its {sample.products:,} named products; the same models and a as above. "
            "Newcomers (no prior order) show that a user without history gets the plain query.",
            "",
            "| cell | queries | users | system | R@10 | R@24 | R@100 | NDCG@10 |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for cell in sample.cells:
            n_users = len({q.user_id for q in cell.queries})
            lines += [
                _row(cell.name, len(cell.queries), n_users, name, per) for name, per in sample.scores[cell.name].items()
            ]
        lines += [
            "",
            "| cell | system vs plain | metric | diff | users | p per user (Holm) |",
            "|---|---|---|---|---|---|",
        ]
        for cell, test in sample.tests["per user"]:
            mark = ("▲" if test.mean_diff > 0 else "▼") if test.significant else ""
            lines.append(
                f"| {cell} | {test.system} | {test.metric} | {test.mean_diff:+.3f} | {test.n} | "
                f"{test.p_adjusted:.4f} {mark} |"
            )
    lines += ["", f"Produced by `{command}` in {seconds:.0f} s wall.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
