"""Experiment (#39): the product encoder and the user model fine-tuned JOINTLY on order sequences.

The shipped `combined` model trains in two stages: a TB-HNS encoder, then the attention user model
(`users.attention`) on its FROZEN product vectors (`users.attention_training`). Here both are updated together
by one contrastive loss, starting from the combined model (`--start`: its encoder and its `user_model/`):

- each step encodes the batch's query texts (aisles, DERIVED from categories) and its positive and negative
  products with the LIVE encoder (gradients flow), personalizes the query vectors through the user model
  (gradients flow into both), and scores them against in-batch positives + TB-HNS negatives (same aisle,
  sibling aisles, never from the target order: `TaxonomyNegatives`, `draw_examples`, as the frozen training);
- the 50 HISTORY vectors of each example come from a STALE cache: every product encoded by the current encoder
  once per epoch (as ANCE refreshes its index), not re-encoded each step (too costly on 2 cores);
- training examples are every order of the TRAIN users (`order_queries(every_order=True)`); each epoch takes a
  fresh seeded chunk of `--examples` of them (a subsample: the full set does not fit the budget);
- epoch 0 is the combined model itself; the epoch kept is the best on VALIDATION users by Recall@24; TEST users
  are read once, at the end.

Evaluation is the offline study's protocol (`benchmarks/personalization_sequences.py`): every user's whole last
order held out, exact cosine search over the named products (re-encoded by the jointly trained encoder for the
joint model), Recall@10/24/100 and NDCG@10; paired randomization tests per user (Holm). The base and combined
vectors are read from (or written to) the offline study's cache. The joint model is saved under `--save-dir`
(runs/, git-ignored), never in the repository.

Run (about 20 minutes on 2 shared CPU cores):
    python benchmarks/personalization_joint.py --epochs 3 --examples 448 \
        --out benchmarks/results/instacart-sequences-joint.md
"""

# no `from __future__ import annotations`: tests load this file without registering it in sys.modules, and
# dataclasses look string annotations up there

import argparse
import copy
import os
import platform
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tbhns_opensearch.catalog.adapters import read_dataset
from tbhns_opensearch.encoder import DEFAULT_ENCODER, load_sentence_transformer
from tbhns_opensearch.eval.metrics import Evaluation
from tbhns_opensearch.eval.significance import PairedTest, adjust, cluster_means, paired_test
from tbhns_opensearch.seeding import keyed_rng
from tbhns_opensearch.users.attention import (
    USER_MODEL_DIR,
    UserAttention,
    history_tensors,
    load_user_model,
    personalize_queries,
    save_user_model,
)
from tbhns_opensearch.users.attention_training import (
    EpochLog,
    OrderQuery,
    ProductSpace,
    TaxonomyNegatives,
    draw_examples,
    evaluate_model,
    order_queries,
)
from tbhns_opensearch.users.sequences import QUERY_FORMS, cut_history, read_order_sequences, select_users

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data"
SHOWN = ("recall@10", "recall@24", "recall@100", "ndcg@10")
TESTED = ("recall@24", "ndcg@10")
COMPARISONS = (("joint", "combined"), ("joint", "learned"))
SELECT = "recall@24"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)  # dropout in the encoder during training
    started = time.perf_counter()
    catalog = list(read_dataset("instacart", args.products))
    data = read_order_sequences(args.order_lines, catalog)
    splits = {name: select_users(data.users, name, seed=args.split_seed) for name in ("train", "validation", "test")}
    study = _offline_study()
    cache = argparse.Namespace(encoder=DEFAULT_ENCODER, cache_dir=args.cache_dir)
    base, _ = study._space(data.users, catalog, cache)
    combined_space, _ = study._space(data.users, catalog, cache, str(args.start))
    learned = load_user_model(args.learned / USER_MODEL_DIR)
    combined = load_user_model(args.start / USER_MODEL_DIR)

    examples = order_queries(splits["train"], combined_space, every_order=True)
    validation = {
        "base": order_queries(splits["validation"], base),
        "start": order_queries(splits["validation"], combined_space),
    }
    trained = train_jointly(args, examples, validation["start"], combined_space, combined)
    save_dir = _save(trained, args.save_dir)

    evaluated = {"validation": splits["validation"], "test": splits["test"]}  # TEST read here, once
    tables, tests, never_hurts = {}, {}, {}
    for split, users in evaluated.items():
        tables[split] = _systems(users, base, combined_space, trained.space, learned, combined, trained.user)
        tests[split] = paired_tests(
            {name: ev.per_query for name, ev in tables[split].items()}, COMPARISONS, TESTED, args.seed
        )
        never_hurts[split] = _never_hurts(users, trained.space, trained.user)
    report = _render(
        args, argv, data, splits, examples, trained, tables, tests, never_hurts, save_dir, time.perf_counter() - started
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(report)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--order-lines", type=Path, default=DATA / "instacart-sequences" / "order_lines.csv", help="order lines CSV"
    )
    parser.add_argument("--products", type=Path, default=DATA / "instacart", help="Instacart products folder")
    parser.add_argument(
        "--start",
        type=Path,
        default=ROOT / "runs" / "train" / "instacart-sequences-combined",
        help="the combined model (TB-HNS encoder + user_model/) joint training starts from",
    )
    parser.add_argument(
        "--learned",
        type=Path,
        default=ROOT / "runs" / "train" / "instacart-sequences-learned",
        help="the learned model (frozen base encoder + user_model/), a reference",
    )
    parser.add_argument(
        "--save-dir",
        type=Path,
        default=ROOT / "runs" / "train" / "instacart-sequences-joint",
        help="where the joint model is saved (git-ignored runs/, never the repository)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path("/tmp/tbhns-sequences-cache"),
        help="the offline study's vector cache (never the repo)",
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--examples", type=int, default=448, help="training examples per epoch (a fresh chunk each)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--same-aisle", type=int, default=4, help="TB-HNS negatives per example from its aisle")
    parser.add_argument("--sibling-aisles", type=int, default=2, help="TB-HNS negatives from sibling aisles")
    parser.add_argument("--encoder-lr", type=float, default=2e-5)
    parser.add_argument("--user-lr", type=float, default=1e-4)
    parser.add_argument("--temperature", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0, help="seeds the subsample, the draws, dropout and the tests")
    parser.add_argument("--split-seed", type=int, default=0, help="the user split's seed (as the offline study)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=Path("/tmp/instacart-sequences-joint.md"))
    return parser


def _offline_study() -> ModuleType:
    """benchmarks/personalization_sequences.py, for its cached product spaces (`_space`): a sibling script,
    importable because Python puts this script's folder first on sys.path."""
    import personalization_sequences

    return personalization_sequences


# --- training ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class JointModel:
    """The encoder and user model of the best validation epoch, its product space, every epoch's log (seconds:
    steps + the refresh) and the seconds of each epoch's refresh (0 for epoch 0)."""

    encoder: Any  # SentenceTransformer
    user: UserAttention
    space: ProductSpace
    best_epoch: int
    log: tuple[EpochLog, ...]
    refresh_s: tuple[float, ...]
    examples_used: int

    @property
    def train_seconds(self) -> float:
        return sum(entry.seconds for entry in self.log)


def epoch_chunks(n_examples: int, per_epoch: int, epochs: int, seed: int) -> list[list[int]]:
    """Disjoint seeded chunks of example indices, one per epoch (wrapping round when the examples run out).

    Example:
        >>> [len(c) for c in epoch_chunks(10, 4, 3, seed=0)], sorted(sum(epoch_chunks(10, 5, 2, seed=0), []))
        ([4, 4, 4], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    """
    if n_examples < 1 or per_epoch < 1:
        raise SystemExit(f"need examples and a positive --examples, got {n_examples} and {per_epoch}")
    order = list(range(n_examples))
    keyed_rng(seed, "joint-examples").shuffle(order)
    return [[order[(e * per_epoch + i) % n_examples] for i in range(per_epoch)] for e in range(epochs)]


def in_order_mask(orders: Sequence[frozenset[int]], positives: Sequence[int]) -> np.ndarray:
    """(batch, batch) True where example i's target order holds example j's positive, j != i: such an in-batch
    "negative" is bought in i's order, so it is masked out of i's softmax (as the frozen training does).

    Example:
        >>> in_order_mask([frozenset({1, 2}), frozenset({3})], [1, 2]).tolist()
        [[False, True], [False, False]]
    """
    mask = np.array([[int(p) in order for p in positives] for order in orders], dtype=bool)
    np.fill_diagonal(mask, False)
    return mask


def encode_live(encoder: Any, texts: Sequence[str]) -> tuple[torch.Tensor, dict[str, int]]:
    """Unit vectors of the distinct `texts` with gradients, and text -> row: (n_distinct, dim)."""
    distinct = list(dict.fromkeys(texts))
    features = encoder.preprocess(distinct) if hasattr(encoder, "preprocess") else encoder.tokenize(distinct)
    return encoder(features)["sentence_embedding"], {t: i for i, t in enumerate(distinct)}


def batch_loss(
    encoder: Any,
    user: UserAttention,
    examples: Sequence[OrderQuery],
    chosen: np.ndarray,
    space: ProductSpace,
    stale: torch.Tensor,
    negatives: TaxonomyNegatives,
    *,
    temperature: float,
    seed: int,
    epoch: int,
) -> torch.Tensor:
    """Softmax cross-entropy of the chosen examples over [in-batch positives, own TB-HNS negatives], with the
    queries and products encoded live and the histories read from the `stale` (n_products, dim) cache."""
    batch = [examples[i] for i in chosen]
    positives, hard = draw_examples(examples, chosen, negatives, seed=seed, epoch=epoch)
    texts = [space.products[r].text_for_embedding() for r in (*positives, *hard.ravel())]
    products, row_of = encode_live(encoder, texts)  # (n_distinct, dim)
    index = torch.tensor([row_of[t] for t in texts])
    positive_vectors = products[index[: len(batch)]]  # (batch, dim)
    hard_vectors = products[index[len(batch) :]].view(len(batch), negatives.count, -1)  # (batch, n, dim)
    queries, query_row = encode_live(encoder, [e.text for e in batch])  # (n_texts, dim)
    history, buckets, mask = history_tensors([e.history for e in batch], stale, user.config.max_history)
    personal = user(queries[torch.tensor([query_row[e.text] for e in batch])], history, buckets, mask)  # (batch, dim)
    in_batch = personal @ positive_vectors.T  # (batch, batch); the diagonal is each example's positive
    masked = torch.from_numpy(in_order_mask([e.order for e in batch], positives))
    logits = [in_batch.masked_fill(masked, float("-inf"))]
    if negatives.count:
        logits.append(torch.einsum("bd,bnd->bn", personal, hard_vectors))  # (batch, n)
    return F.cross_entropy(torch.cat(logits, dim=1) / temperature, torch.arange(len(batch)))


def encode_space(encoder: Any, like: ProductSpace) -> ProductSpace:
    """`like`'s products and aisle query texts re-encoded by `encoder` (no gradients): the stale cache."""
    encoder.eval()
    texts = sorted({QUERY_FORMS["aisle"](p.taxonomy_path) for p in like.products if p.taxonomy_path})
    with torch.no_grad():
        matrix = encoder.encode(
            [p.text_for_embedding() for p in like.products],
            batch_size=128,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )  # (n_products, dim)
        queries = encoder.encode(texts, batch_size=128, convert_to_numpy=True, normalize_embeddings=True)
    return ProductSpace(like.products, matrix.astype(np.float32), dict(zip(texts, queries.astype(np.float32))))


def train_jointly(
    args: argparse.Namespace,
    examples: Sequence[OrderQuery],
    validation: Sequence[OrderQuery],
    start: ProductSpace,
    start_user: UserAttention,
) -> JointModel:
    """Fine-tune the `--start` encoder and its user model together; keep the best validation epoch (0: start)."""
    encoder = load_sentence_transformer(str(args.start), "cpu")
    user = copy.deepcopy(start_user)
    negatives = TaxonomyNegatives(start, args.same_aisle, args.sibling_aisles)
    optimizer = torch.optim.AdamW(
        [
            {"params": encoder.parameters(), "lr": args.encoder_lr},
            {"params": user.parameters(), "lr": args.user_lr, "weight_decay": 0.0},
        ]
    )
    space = start  # epoch 0: the combined model's own vectors (the offline study's cache of its encoder)
    log, refresh = [EpochLog(0, float("nan"), dict(evaluate_model(user, validation, space).mean), 0.0)], [0.0]
    best = (log[0].validation[SELECT], 0, _state(encoder), _state(user), space)
    _note(log[0], 0.0)
    chunks = epoch_chunks(len(examples), args.examples, args.epochs, args.seed)
    for epoch, chunk in enumerate(chunks, start=1):
        stale = torch.from_numpy(space.matrix)  # (n_products, dim), refreshed once per epoch
        order = np.asarray(chunk, dtype=np.int64)[
            keyed_rng(args.seed, "joint-order", epoch).sample(range(len(chunk)), len(chunk))
        ]
        encoder.train()
        user.train()
        started, total, steps = time.perf_counter(), 0.0, 0
        for first in range(0, len(order), args.batch_size):
            chosen = order[first : first + args.batch_size]
            if len(chosen) < 2:
                continue
            loss = batch_loss(
                encoder,
                user,
                examples,
                chosen,
                start,
                stale,
                negatives,
                temperature=args.temperature,
                seed=args.seed,
                epoch=epoch,
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, steps = total + loss.item(), steps + 1
        step_s = time.perf_counter() - started
        user.eval()
        started = time.perf_counter()
        space = encode_space(encoder, start)  # the refresh: next epoch's history cache and this epoch's validation
        refresh_s = time.perf_counter() - started
        validated = dict(evaluate_model(user, validation, space).mean)
        log.append(EpochLog(epoch, total / max(steps, 1), validated, step_s + refresh_s))
        refresh.append(refresh_s)
        _note(log[-1], refresh_s)
        if log[-1].validation[SELECT] > best[0]:
            best = (log[-1].validation[SELECT], epoch, _state(encoder), _state(user), space)
    encoder.load_state_dict(best[2])
    user.load_state_dict(best[3])
    return JointModel(
        encoder.eval(), user.eval(), best[4], best[1], tuple(log), tuple(refresh), len(set(sum(chunks, [])))
    )


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


def _note(entry: EpochLog, refresh_s: float) -> None:
    print(
        f"epoch {entry.epoch}: loss {entry.loss:.4f} validation R@24 {entry.validation[SELECT]:.4f} "
        f"steps {entry.seconds - refresh_s:.0f} s refresh {refresh_s:.0f} s",
        file=sys.stderr,
        flush=True,
    )


def _save(trained: JointModel, directory: Path) -> Path:
    trained.encoder.save(str(directory))
    save_user_model(trained.user, directory / USER_MODEL_DIR)
    return directory


# --- evaluation ----------------------------------------------------------------------------------------------


def _systems(
    users: Sequence[Any],
    base: ProductSpace,
    combined_space: ProductSpace,
    joint_space: ProductSpace,
    learned: UserAttention,
    combined: UserAttention,
    joint: UserAttention,
) -> dict[str, Evaluation]:
    """Every system on the users' last orders, each searching the space of its encoder."""
    cases = {
        "learned": (learned, base),
        "tbhns plain": (None, combined_space),
        "combined": (combined, combined_space),
        "joint plain": (None, joint_space),
        "joint": (joint, joint_space),
    }
    return {name: evaluate_model(model, order_queries(users, space), space) for name, (model, space) in cases.items()}


def paired_tests(
    per_query: Mapping[str, Mapping[str, Mapping[str, float]]],
    comparisons: Sequence[tuple[str, str]],
    metrics: Sequence[str],
    seed: int,
) -> dict[str, list[PairedTest]]:
    """Per user (each user's queries averaged, qid = user/target/text; primary) and per query, each family
    Holm-corrected over every comparison and metric.

    Example:
        >>> scores = {"a": {"m": {"u1/0/x": 0.0, "u2/0/x": 1.0}}, "b": {"m": {"u1/0/x": 1.0, "u2/0/x": 1.0}}}
        >>> [t.mean_diff for t in paired_tests(scores, [("b", "a")], ["m"], seed=0)["per user"]]
        [0.5]
    """
    families: dict[str, list[PairedTest]] = {"per user": [], "per query": []}
    for system, baseline in comparisons:
        for metric in metrics:
            for family, view in (
                ("per user", lambda s: cluster_means(s, lambda q: q.split("/", 1)[0])),
                ("per query", dict),
            ):
                families[family].append(
                    paired_test(
                        view(per_query[baseline][metric]),
                        view(per_query[system][metric]),
                        metric=metric,
                        baseline_name=baseline,
                        system_name=system,
                        seed=seed,
                    )
                )
    return {family: adjust(tests, "holm") for family, tests in families.items()}


def _never_hurts(users: Sequence[Any], space: ProductSpace, model: UserAttention) -> tuple[int, bool, float]:
    """Histories cut to 0 orders: (queries, personalized vectors == the encoder's plain query vectors bit for
    bit, Recall@24 of the personalized vectors)."""
    queries = order_queries([cut_history(u, 0) for u in users], space)
    plain = space.query_matrix(queries)
    personal = personalize_queries(model, plain, [q.history for q in queries], space.matrix)
    return len(queries), bool(np.array_equal(plain, personal)), evaluate_model(model, queries, space).mean[SELECT]


# --- report --------------------------------------------------------------------------------------------------


def _render(
    args: argparse.Namespace,
    argv: Sequence[str] | None,
    data: Any,
    splits: Mapping[str, Sequence[Any]],
    examples: Sequence[OrderQuery],
    trained: JointModel,
    tables: Mapping[str, Mapping[str, Evaluation]],
    tests: Mapping[str, Mapping[str, list[PairedTest]]],
    never_hurts: Mapping[str, tuple[int, bool, float]],
    save_dir: Path,
    seconds: float,
) -> str:
    command = "python " + " ".join(
        shlex.quote(a) for a in ["benchmarks/personalization_joint.py", *(sys.argv[1:] if argv is None else argv)]
    )
    refreshing = sum(trained.refresh_s)
    lines = [
        "# Joint fine-tuning of the encoder and the user model (#39): REAL users, DERIVED aisle queries",
        "",
        "**Data.** REAL Instacart users of `instacart-sequences/order_lines.csv` (`../shared/data/README.md`, "
        "non-commercial: only these aggregate figures are committed). Each user's whole LAST order is held out; "
        "the history is every earlier order. Queries are DERIVED from categories (the aisle of a product of the "
        "order), not typed by shoppers; relevant = that order's products in the aisle.",
        f"- lines read {data.lines_read:,}, dropped for want of a product name {data.lines_dropped:,} "
        f"({data.lines_dropped / data.lines_read:.1%}); users {len(data.users)}: "
        + ", ".join(f"{name} {len(users)}" for name, users in splits.items())
        + f" (seeded hash of the user id, seed {args.split_seed}, as the offline study). The epoch is chosen on "
        "VALIDATION users; TEST users are read once, after training.",
        f"- candidates: the {len(trained.space.products):,} named products; exact cosine search, top 100.",
        f"- start: `{args.start.relative_to(ROOT) if args.start.is_relative_to(ROOT) else args.start}` "
        "(combined: TB-HNS encoder + user model trained on its frozen vectors); reference: learned "
        f"(`{args.learned.relative_to(ROOT) if args.learned.is_relative_to(ROOT) else args.learned}`, frozen "
        "base encoder + user model).",
        f"- joint training: encoder (AdamW lr {args.encoder_lr:g}) and user model (lr {args.user_lr:g}) updated "
        f"by one loss: softmax cross-entropy at tau {args.temperature:g} over in-batch positives (batch "
        f"{args.batch_size}; a positive in the example's own order masked) + {args.same_aisle} same-aisle + "
        f"{args.sibling_aisles} sibling-aisle TB-HNS negatives (never from the target order); queries, positives "
        "and negatives encoded LIVE (gradients flow into the encoder through both sides and through the user "
        "model); the 50 history vectors per example from a STALE cache, every product re-encoded once per epoch "
        "(ANCE-style refresh), no gradient through them.",
        f"- examples: {len(examples):,} (every order with an older one, of the {len(splits['train'])} TRAIN "
        f"users); SUBSAMPLED to {args.examples:,} per epoch, a fresh seeded chunk each epoch "
        f"({trained.examples_used:,} distinct examples over {args.epochs} epochs, "
        f"{len(examples) and trained.examples_used / len(examples):.1%} of them). Learning rates and sizes were "
        "set once, not tuned.",
        f"- wall time: training **{trained.train_seconds:.0f} s** ({trained.train_seconds - refreshing:.0f} s of "
        f"steps, {refreshing:.0f} s re-encoding {len(trained.space.products):,} products after each epoch); "
        f"whole script {seconds:.0f} s; cpu, {args.threads} torch threads, {platform.machine()}, "
        f"{os.cpu_count()} cores visible, load average {os.getloadavg()[0]:.1f} at the end.",
        f"- epoch kept: **{trained.best_epoch}** (validation Recall@24); saved to "
        f"`{os.path.relpath(save_dir)}` (git-ignored).",
        "",
        "| epoch | training loss | validation R@10 | R@24 | R@100 | NDCG@10 | step s | refresh s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {entry.epoch} | {entry.loss:.4f} | "
        + " | ".join(f"{entry.validation[m]:.3f}" for m in SHOWN)
        + f" | {entry.seconds - refresh_s:.0f} | {refresh_s:.0f} |"
        for entry, refresh_s in zip(trained.log, trained.refresh_s)
    ]
    lines += ["", "Epoch 0 is the combined model itself (its encoder's vectors, its user model).", ""]
    for split in tables:
        table = tables[split]
        n_queries = len(next(iter(table.values())).per_query[SELECT])
        n_users = len({q.split("/", 1)[0] for q in next(iter(table.values())).per_query[SELECT]})
        lines += [
            f"## {split.upper()} users ({n_users} users, {n_queries} queries), DERIVED aisle queries",
            "",
            "| system | R@10 | R@24 | R@100 | NDCG@10 |",
            "|---|---|---|---|---|",
        ]
        lines += [f"| {name} | " + " | ".join(f"{ev.mean[m]:.3f}" for m in SHOWN) + " |" for name, ev in table.items()]
        n, equal, recall = never_hurts[split]
        lines += [
            "",
            f"Never hurts: histories cut to 0 orders ({n} queries): the joint model's vectors "
            f"{'equal' if equal else 'DIFFER FROM'} the joint encoder's plain query vectors bit for bit "
            f"(R@24 {recall:.3f} vs joint plain {table['joint plain'].mean[SELECT]:.3f}).",
            "",
            "| system vs baseline | metric | diff | users | p per user (Holm) | 95% CI per user | queries | "
            "p per query (Holm) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for user_test, query_test in zip(tests[split]["per user"], tests[split]["per query"]):
            mark = ("▲" if user_test.mean_diff > 0 else "▼") if user_test.significant else ""
            lines.append(
                f"| {user_test.system} vs {user_test.baseline} | {user_test.metric} | {query_test.mean_diff:+.3f} | "
                f"{user_test.n} | {user_test.p_adjusted:.4f} {mark} | [{user_test.ci_low:+.3f}, "
                f"{user_test.ci_high:+.3f}] | {query_test.n} | {query_test.p_adjusted:.4f} |"
            )
        lines.append("")
    lines += [
        "Randomization test (10,000 sign flips), two-sided, Holm over the 4 tests of each family and split. "
        "Per user (primary): each user's queries averaged, paired by user. diff: mean over queries. "
        "VALIDATION picked the epoch, so its tests favour the joint model; TEST is the honest read.",
        "",
        f"Produced by `{command}` in {seconds:.0f} s wall.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
