"""Compare negative samplers with the same steps, seed and data: base model vs random vs bm25 vs taxonomy (vs ance).

For each dataset config (training/<name>-taxonomy.toml) the data are prepared once; every sampler then
trains from the same base model with the same steps, batch size, seed and validation schedule, and the
weights of its best validation step are scored once on the held-out test split (the test split is read
only here, after training). Reported per system: test Recall@24 and NDCG@10, best validation Recall@24, the
step it was reached at (steps-to-best-validation; 0 means no step beat the base model), training wall time,
and where the negatives came from. Paired randomization tests (eval.significance.paired_test, Holm-corrected
per dataset) compare taxonomy with the base model, with random and with bm25 on the test queries.

    OPENSEARCH_URL=http://127.0.0.1:9250 python training/compare_samplers.py            # every dataset
    python training/compare_samplers.py --datasets icecat --samplers random taxonomy --steps 40

Writes benchmarks/results/samplers_<dataset>.md and .json, and saves each trained model (best validation
step, with ONNX export, manifest, model card and split.json) under runs/compare/<dataset>-<sampler>, so
`benchmarks/configs/icecat-samplers.toml` can rank the whole catalog with them through OpenSearch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import torch

from tbhns_opensearch.config import OpenSearchConfig
from tbhns_opensearch.eval.metrics import Evaluation, MetricConfig
from tbhns_opensearch.eval.significance import PairedTest, adjust, paired_test
from tbhns_opensearch.training.config import LossConfig, SamplerConfig, TrainConfig, load_train_config
from tbhns_opensearch.training.data import prepare_data
from tbhns_opensearch.training.experimental.config import DistillConfig, ExperimentalConfig, PreferenceConfig
from tbhns_opensearch.training.losses import DIRECTIONS
from tbhns_opensearch.training.pipeline import train_and_export
from tbhns_opensearch.training.retrieval import evaluate_split, product_index
from tbhns_opensearch.training.trainer import TrainResult, load_model

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "runs" / "compare"  # each trained model is saved at <dataset>-<sampler> (git-ignored)
CONFIGS = {
    "amazon-uk-toys": ROOT / "training" / "toys-taxonomy.toml",
    "icecat": ROOT / "training" / "icecat-taxonomy.toml",
    "homedepot": ROOT / "training" / "homedepot-taxonomy.toml",
}
TAXONOMY = SamplerConfig(name="taxonomy", leaf=1, sibling=1, cousin=0)
RANDOM = SamplerConfig(name="random")
MASK = {"loss": "masked_mnrl", "mask_guide": "base", "mask_margin": 0.05}
RECIPE = {"sampler": TAXONOMY, "batch_size": 256, "steps": 0.25, "learning_rate": 1e-4}
"""training/homedepot-taxonomy.toml's pass over the pairs: a quarter of the comparison's steps at 4x its batch."""
RECIPE_BF16 = {**RECIPE, "precision": "bf16"}
SYSTEMS: dict[str, dict[str, Any]] = {  # TrainConfig overrides per system; "long" runs get 1.5x the steps
    # every hard sampler gives 2 negatives per row; random relies on in-batch negatives only
    "random": {"sampler": RANDOM},
    "bm25": {"sampler": SamplerConfig(name="bm25", count=2, depth=30)},
    "taxonomy": {"sampler": TAXONOMY},
    "ance": {"sampler": SamplerConfig(name="ance", count=2, depth=30, remine_every=40)},
    # arXiv 2606.01504: stage 1 with the false-negative margin mask, then ROAR vs as many more stage-1 steps
    "taxonomy-masked": {"sampler": TAXONOMY, **MASK},
    "taxonomy-masked-roar": {"sampler": TAXONOMY, **MASK, "stage2": "half"},
    "taxonomy-masked-long": {"sampler": TAXONOMY, **MASK, "steps": 1.5},
    # the mask with the model being trained as its own guide (the base model is too weak a judge on Home Depot)
    "taxonomy-masked-self": {"sampler": TAXONOMY, **MASK, "mask_guide": "self"},
    # the recipe lever for Home Depot: TB-HNS with two passes over the pairs at twice the learning rate
    "taxonomy-2x": {"sampler": TAXONOMY, "steps": 2.0, "learning_rate": 1e-4},
    # the data lever: partly relevant products (grade 1) are positives too, same steps
    "taxonomy-partial": {"sampler": TAXONOMY, "min_grade": 1},
    # the batch lever: 4x the in-batch negatives, the same pass over the pairs (a quarter of the steps)
    "taxonomy-batch256": RECIPE,
    # the lexical lever: + queries generated from 20,000 product titles (Home Depot: ~16,700 pairs), one pass over
    # real + generated pairs at batch 256; "-long" is its control: as many steps on the real pairs alone
    "taxonomy-generated": {**RECIPE, "steps": 0.47, "generated_pairs": 20000},
    "taxonomy-batch256-long": {**RECIPE, "steps": 0.47},
    # the learning-rate lever: the recipe's pass at twice its learning rate (1e-4 beat 5e-5; is 1e-4 the top?)
    "taxonomy-batch256-lr2e4": {**RECIPE, "learning_rate": 2e-4},
    # the recipe with its steps under bfloat16 autocast (AMX): as good as float32, in less time?
    "taxonomy-batch256-bf16": RECIPE_BF16,
    # the temperature lever: MNRL's softmax twice as sharp (scale 40, temperature 0.025), so the hardest taxonomy
    # negatives weigh more; on Home Depot masking them away hurt, so does leaning on them help?
    "taxonomy-batch256-scale40": {**RECIPE_BF16, "scale": 40.0},
    # arXiv 2606.01504's mask on the recipe, at GISTEmbed's margin 0: only negatives the base model scores above the
    # row's own positive are left out (margin 0.05 at batch 64 cost NDCG@10: docs/training.md)
    "taxonomy-batch256-masked0": {**RECIPE_BF16, **MASK, "mask_margin": 0.0},
    # the other way round: masking a row's few hardest negatives cost NDCG@10, so do more of them help?
    # twice the taxonomy negatives per row (2 leaf + 2 sibling), the recipe's pass, bf16 steps
    "taxonomy-batch256-neg4": {**RECIPE_BF16, "sampler": SamplerConfig(name="taxonomy", leaf=2, sibling=2, cousin=0)},
    # the loss lever: GTE's improved contrastive loss (sentence-transformers' MNRL with all four directions): each
    # query also pushed from the batch's other queries, each product pulled to its own query against theirs and
    # pushed from the other rows' products, in one softmax; the recipe's pass, bf16 steps
    "taxonomy-batch256-gte": {**RECIPE_BF16, "directions": DIRECTIONS},
    # the hardness lever (EmbeddingGemma): each explicit taxonomy negative's logit gains 5 x its cosine, so the
    # closest ones weigh more, in-batch negatives untouched; masking those few cost NDCG@10, does stressing them help?
    "taxonomy-batch256-hard5": {**RECIPE_BF16, "hardness_mode": "hard_negatives", "hardness_strength": 5.0},
    # the input-length lever: 6% of Home Depot titles run past 32 tokens (their size, colour or pack count is cut);
    # 48 tokens holds 99.9% of them, in training and in the saved model alike; the recipe's pass, bf16 steps
    "taxonomy-batch256-48tok": {**RECIPE_BF16, "max_seq_length": 48},
    # the batch-composition lever (topic-aware sampling, with the taxonomy as the topics): each batch of 256 rows
    # from neighbouring taxonomy nodes, so the ~1,000 in-batch negatives are leaf, sibling and cousin products
    # too, not only the two TB-HNS draws per row; the recipe's pass, bf16 steps
    "taxonomy-batch256-grouped": {**RECIPE_BF16, "batching": "taxonomy"},
    # the teacher lever: beside the recipe's loss, a KL term pulls each row's softmax over 4 of the hybrid's first 24
    # products (BM25 + base encoder, the served 0.6 / 0.4 fusion) toward the hybrid's scores, so the encoder learns
    # which near matches the lexical side ranks first (Home Depot's words-only queries); the recipe's pass, bf16 steps
    "taxonomy-batch256-distill": {**RECIPE_BF16, "distill": DistillConfig(candidates=4, teacher_temperature=0.2)},
    # the same as a short second stage: from the recipe's model (base_model), 25 steps of 256 rows, each row its query,
    # positive and 4 of the hybrid's first 24 products served with that model (a stronger teacher than the base
    # model's hybrid through the node); in-batch negatives, half the lr. A whole recipe pass with 4 candidates per row
    # costs several times the recipe's steps; this short stage costs a fraction of it
    "taxonomy-batch256-then-distill": {
        "base_model": str(MODELS / "homedepot-taxonomy-batch256-bf16"),
        "sampler": RANDOM,
        "batch_size": 256,
        "steps": 25 / 300,
        "learning_rate": 5e-5,
        "precision": "bf16",
        "distill": DistillConfig(candidates=4, teacher_temperature=0.2),
    },
    # seeds: TB-HNS against in-batch random negatives on the recipe's pass (bf16 steps), at the recipe's seed and
    # another; a training seed changes the initial order, the negatives drawn and dropout, never the splits
    "random-batch256-bf16": {**RECIPE_BF16, "sampler": RANDOM},
    "random-batch256-bf16-seed14": {**RECIPE_BF16, "sampler": RANDOM, "seed": 14},
    "taxonomy-batch256-bf16-seed14": {**RECIPE_BF16, "seed": 14},
    # the batch lever again: 8x the in-batch negatives of the comparisons, one pass, lr scaled with sqrt(batch)
    "taxonomy-batch512": {"sampler": TAXONOMY, "batch_size": 512, "steps": 0.125, "learning_rate": 1.5e-4},
    # arXiv 2606.01504 on the recipe: ROAR after the recipe's pass vs "-long" (as many more stage-1 texts: 66 steps
    # x 256 rows x 4 texts ~ 117 ROAR steps x 64 queries x 9 texts), at half the stage-1 learning rate
    "taxonomy-batch256-roar": {
        **RECIPE,
        "stage2": {"max_steps": 117, "eval_every": 39, "batch_size": 64, "learning_rate": 5e-5},
    },
    # the same, with the two levers the ROAR run left untried: the lowest group from the TB-HNS sampler (the top
    # product's leaf and sibling) instead of random products, and an in-batch contrastive term beside ROAR
    "taxonomy-batch256-roar-contrast": {
        **RECIPE,
        "stage2": {
            "max_steps": 117,
            "eval_every": 39,
            "batch_size": 64,
            "learning_rate": 5e-5,
            "lowest": "taxonomy",
            "contrast": 1.0,
        },
    },
}
OWN_DATA = {"min_grade", "generated_pairs"}
"""System overrides of [data]: such a system prepares its own training pairs."""
LOSS_KEYS = {f.name for f in fields(LossConfig)} - {"name"}
"""System overrides of [loss] (besides "loss", its name)."""
EXPERIMENTAL_KEYS = {f.name for f in fields(ExperimentalConfig)}
"""System overrides of [experimental]."""
PAIRS = [
    ("taxonomy", "base"),
    ("taxonomy", "random"),
    ("taxonomy", "bm25"),
    ("taxonomy-masked", "taxonomy"),
    ("taxonomy-masked-self", "taxonomy"),
    ("taxonomy-masked-self", "taxonomy-masked"),
    ("taxonomy-masked-roar", "taxonomy-masked-long"),
    ("taxonomy-masked-roar", "taxonomy-masked"),
    ("taxonomy-2x", "taxonomy"),
    ("taxonomy-2x", "base"),
    ("taxonomy-partial", "taxonomy"),
    ("taxonomy-partial", "base"),
    ("taxonomy-batch256", "taxonomy"),
    ("taxonomy-batch256", "base"),
    ("taxonomy-generated", "taxonomy-batch256"),
    ("taxonomy-generated", "taxonomy-batch256-long"),
    ("taxonomy-batch256-long", "taxonomy-batch256"),
    ("taxonomy-batch512", "taxonomy-batch256"),
    ("taxonomy-batch256-lr2e4", "taxonomy-batch256"),
    ("taxonomy-batch256-bf16", "taxonomy-batch256"),
    ("taxonomy-batch256-scale40", "taxonomy-batch256-bf16"),
    ("taxonomy-batch256-masked0", "taxonomy-batch256-bf16"),
    ("taxonomy-batch256-neg4", "taxonomy-batch256-bf16"),
    ("taxonomy-batch256-gte", "taxonomy-batch256-bf16"),
    ("taxonomy-batch256-hard5", "taxonomy-batch256-bf16"),
    ("taxonomy-batch256-48tok", "taxonomy-batch256-bf16"),
    ("taxonomy-batch256-grouped", "taxonomy-batch256-bf16"),
    ("taxonomy-batch256-distill", "taxonomy-batch256-bf16"),
    ("taxonomy-batch256-then-distill", "taxonomy-batch256-bf16"),
    ("taxonomy-batch256-bf16", "random-batch256-bf16"),
    ("taxonomy-batch256-bf16-seed14", "random-batch256-bf16-seed14"),
    ("taxonomy-batch256-bf16 seeds 13+14", "random-batch256-bf16 seeds 13+14"),
    ("taxonomy-batch256-roar", "taxonomy-batch256-long"),
    ("taxonomy-batch256-roar", "taxonomy-batch256"),
    ("taxonomy-batch256-roar-contrast", "taxonomy-batch256-long"),
    ("taxonomy-batch256-roar-contrast", "taxonomy-batch256"),
]
"""The significance family: (system, baseline) pairs tested when both ran (Holm-corrected together)."""
SEED_POOLS = {
    "taxonomy-batch256-bf16 seeds 13+14": ("taxonomy-batch256-bf16", "taxonomy-batch256-bf16-seed14"),
    "random-batch256-bf16 seeds 13+14": ("random-batch256-bf16", "random-batch256-bf16-seed14"),
}
"""A system over several training seeds, scored per query by the mean of its seed runs (when all of them ran)."""
SETTINGS = {  # per dataset, the same for every sampler; sized for a CPU-only machine
    "amazon-uk-toys": {"max_steps": 120, "eval_every": 40, "max_seq_length": 64, "catalog_limit": 3000},
    "icecat": {"max_steps": 80, "eval_every": 40, "max_seq_length": 32, "catalog_limit": 3000},
    "homedepot": {
        "max_steps": 300,
        "eval_every": 150,
        "max_seq_length": 32,
        "catalog_limit": 0,
        "batch_size": 64,
        "learning_rate": 5e-5,
    },  # the budget every committed Home Depot comparison ran at
}
"""Icecat texts carry descriptions, so a row costs more than a toys row at 64 tokens: fewer steps, 32 tokens."""
METRICS = ("recall@24", "ndcg@10")
QUERY_NOTES = {
    "generated": "GENERATED queries (querygen: title fragments, brand + type, category names); test queries' "
    "products were never training positives",
    "judgments": "REAL shopper queries with graded judgments, split by query",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument(
        "--samplers",
        nargs="+",
        default=["random", "bm25", "taxonomy"],
        choices=list(SYSTEMS),
        help="systems to train: samplers, and the two-stage variants of taxonomy",
    )
    parser.add_argument("--steps", type=int, help="optimizer steps per sampler [default: SETTINGS]")
    parser.add_argument("--eval-every", type=int, help="validate every N steps [default: SETTINGS]")
    parser.add_argument("--max-seq-length", type=int, help="tokens per text [default: SETTINGS]")
    parser.add_argument(
        "--catalog-limit", type=int, help="products per catalog, judged ones always kept [default: SETTINGS]"
    )
    parser.add_argument(
        "--reuse",
        nargs="+",
        default=[],
        choices=list(SYSTEMS),
        help="score the models an earlier run saved instead of training them again (their training "
        "rows are copied from that run's JSON in --out)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    flags = {
        "max_steps": args.steps,
        "eval_every": args.eval_every,
        "max_seq_length": args.max_seq_length,
        "catalog_limit": args.catalog_limit,
    }
    for dataset in args.datasets:
        settings = SETTINGS[dataset] | {key: value for key, value in flags.items() if value is not None}
        config = load_train_config(CONFIGS[dataset])
        config = replace(
            config,
            max_steps=settings["max_steps"],
            eval_every=settings["eval_every"],
            patience=0,
            max_seq_length=settings["max_seq_length"],
            batch_size=settings.get("batch_size", config.batch_size),
            learning_rate=settings.get("learning_rate", config.learning_rate),
            data=replace(config.data, catalog_limit=settings["catalog_limit"]),
        )
        stem = args.out / f"samplers_{dataset}"
        earlier_file = stem.with_suffix(".json")
        earlier = json.loads(earlier_file.read_text())["systems"] if earlier_file.is_file() else {}
        reused = {name: earlier.get(name) or saved_row(MODELS / f"{dataset}-{name}", name) for name in args.reuse}
        results = compare(config, args.samplers, reused)
        write(results, stem)


def compare(
    config: TrainConfig, samplers: list[str], reused: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Train every sampler on the same data; score base and trained models on the test split. `reused`: rows of
    an earlier run (same settings) whose saved models are scored again instead of trained."""
    started = time.perf_counter()
    data = prepare_data(config.data, config.seed)
    metrics = MetricConfig(threshold=config.data.relevance_threshold)
    base = load_model(config)
    base_index = product_index(base, data.products)
    base_validation = evaluate_split(base, data.validation, base_index, metrics)
    tests: dict[str, Evaluation] = {"base": evaluate_split(base, data.test, base_index, metrics)}
    systems: dict[str, dict[str, Any]] = {"base": _system_row(None, tests["base"], base_validation)}
    vectors = {config.base_model: base_index.vectors}  # catalog vectors per model, for runs that start from it
    for name, row in (reused or {}).items():
        path = str(MODELS / f"{data.name}-{name}")
        model = load_model(replace(config, base_model=path))
        index = product_index(model, data.products)
        vectors[path] = index.vectors
        tests[name] = evaluate_split(model, data.test, index, metrics)
        systems[name] = row | {"test": {m: round(tests[name].mean[m], 4) for m in METRICS}, "reused": True}
    for name in samplers:
        run_config = system_config(config, name, str(MODELS / f"{data.name}-{name}"))
        run_data = prepare_data(run_config.data, config.seed) if _own_data(name) else data
        result = train_and_export(
            run_config,
            data=run_data,
            base_vectors=vectors.get(run_config.base_model),
            opensearch=OpenSearchConfig.from_env() if name == "bm25" else None,
        ).result
        tests[name] = evaluate_split(result.model, data.test, product_index(result.model, data.products), metrics)
        systems[name] = _system_row(result, tests[name], base_validation)
        if _own_data(name):
            systems[name]["train_pairs"] = len(run_data.train_pairs)
        print(
            f"{data.name} {name}: {json.dumps({k: systems[name][k] for k in ('test', 'best_step', 'train_s')})}",
            flush=True,
        )
    pools = pooled(tests)
    return {
        "dataset": data.name,
        "queries": config.data.queries,
        "taxonomy": config.data.taxonomy,
        "data": data.report,
        "setup": {
            "steps": config.max_steps,
            "batch_size": config.batch_size,
            "max_seq_length": config.max_seq_length,
            "learning_rate": config.learning_rate,
            "eval_every": config.eval_every,
            "seed": config.seed,
            "catalog_limit": config.data.catalog_limit,
            "loss": config.loss.name,
            "base_model": config.base_model,
            "relevance_threshold": config.data.relevance_threshold,
            "machine": _machine(),
        },
        "systems": systems,
        "pools": {
            name: {"members": list(SEED_POOLS[name]), "test": {m: round(e.mean[m], 4) for m in METRICS}}
            for name, e in pools.items()
        },
        "significance": [asdict(t) for t in _significance(tests | pools)],
        "wall_s": round(time.perf_counter() - started, 1),
        "load_average_15min": round(os.getloadavg()[2], 2),
    }


def system_config(config: TrainConfig, name: str, output_dir: str) -> TrainConfig:
    """`config` as system `name` runs it: its sampler and loss; "stage2" adds a ROAR stage ("half": half the steps,
    a quarter of the batch, half the learning rate; or its own `PreferenceConfig` fields; stage 1 keeps its steps),
    "long" gives stage 1 that budget instead;
    `OWN_DATA` keys change which pairs are training positives (same splits and evaluation); `LOSS_KEYS` and "loss"
    go to [loss], `EXPERIMENTAL_KEYS` to [experimental]."""
    overrides = dict(SYSTEMS[name])
    steps = round(config.max_steps * overrides.pop("steps", 1.0))
    data_overrides = {key: overrides.pop(key) for key in OWN_DATA if key in overrides}
    if data_overrides:
        overrides["data"] = replace(config.data, **data_overrides)
    stage2 = overrides.pop("stage2", None)
    if stage2 == "half":
        overrides["stage2"] = PreferenceConfig(
            max_steps=config.max_steps // 2,
            eval_every=config.eval_every // 2,
            batch_size=config.batch_size // 4,
            learning_rate=config.learning_rate / 2,
        )
    elif stage2:
        overrides["stage2"] = PreferenceConfig(**stage2)
    loss = {key: overrides.pop(key) for key in LOSS_KEYS if key in overrides}
    if "loss" in overrides:
        loss["name"] = overrides.pop("loss")
    experimental = {key: overrides.pop(key) for key in EXPERIMENTAL_KEYS if key in overrides}
    return replace(
        config,
        max_steps=steps,
        output_dir=output_dir,
        loss=replace(config.loss, **loss),
        experimental=replace(config.experimental, **experimental),
        **overrides,
    )


def saved_row(model_dir: Path, name: str) -> dict[str, Any]:
    """The training row of a model an earlier run saved, read from its model card: what `--reuse` scores when that
    run's JSON has no row for it (e.g. the run stopped after saving the model)."""
    card_file = model_dir / "model_card.json"
    if not card_file.is_file():
        raise SystemExit(f"--reuse {name}: no saved model at {model_dir}; train it first (--samplers {name})")
    card = json.loads(card_file.read_text())
    training, counts = card["training"], card["data"]["counts"]
    row = {
        "validation": {m: card["validation"][m] for m in METRICS},
        "best_step": training["best_step"],
        "steps": training["steps"],
        "train_s": round(training["wall_s"] - training["eval_s"], 1),
        "levels": card["sampler"]["level_counts"],
    }
    if _own_data(name):
        row["train_pairs"] = counts.get("train_pairs_real", 0) + counts.get("train_pairs_generated", 0)
    if stage2 := training.get("stage2"):
        stage2_s = round(stage2["wall_s"] - stage2["eval_s"], 1)
        log = [json.loads(line) for line in (model_dir / stage2["step_log"]).read_text().splitlines()]
        history = _history((line["step"], line["validation"]) for line in log if "validation" in line)
        row["stage2"] = {
            "steps": stage2["steps"],
            "best_step": stage2["best_step"],
            "rows": stage2["rows"],
            "train_s": stage2_s,
            "history": history,
        }
        row["train_s"] = round(row["train_s"] + stage2_s, 1)
    return row


def _history(points: Iterable[tuple[int, Mapping[str, float]]]) -> list[dict[str, Any]]:
    """A training row's validation history: each validated step with its `METRICS`."""
    return [{"step": step, **{m: metrics[m] for m in METRICS}} for step, metrics in points]


def _sampler(name: str) -> str | None:
    """The negative sampler system `name` trains with; None for the untrained base model."""
    return SYSTEMS[name]["sampler"].name if name in SYSTEMS else None


def _own_data(name: str) -> bool:
    """Whether system `name` overrides [data], i.e. trains on pairs of its own (same splits and evaluation)."""
    return bool(OWN_DATA & set(SYSTEMS[name]))


def _system_row(result: TrainResult | None, test: Evaluation, base_validation: Evaluation) -> dict[str, Any]:
    row: dict[str, Any] = {"test": {m: round(test.mean[m], 4) for m in METRICS}, "test_queries": len(test.queries)}
    if result is None:
        return row | {"validation": {m: round(base_validation.mean[m], 4) for m in METRICS}, "best_step": 0}
    stage2 = result.stage2
    extra = {"masked": result.loss_counts} if result.loss_counts else {}
    if stage2:
        extra["stage2"] = {
            "steps": stage2.steps,
            "best_step": stage2.best_step,
            "rows": stage2.rows,
            "train_s": round(stage2.wall_s - stage2.eval_s, 1),
            "history": _history((p.step, p.metrics) for p in stage2.history),
        }
    return (
        row
        | extra
        | {
            "validation": {m: result.best_validation[m] for m in METRICS},
            "best_step": result.best_step,
            "steps": result.steps,
            "train_s": round(result.wall_s - result.eval_s + (stage2.wall_s - stage2.eval_s if stage2 else 0.0), 1),
            "levels": result.sampler.level_counts,
            "taxonomy": result.sampler.taxonomy,
            "history": _history((p.step, p.metrics) for p in result.history),
            "per_query_test": test.per_query["recall@24"],
        }
    )


def pooled(tests: Mapping[str, Evaluation]) -> dict[str, Evaluation]:
    """Each `SEED_POOLS` system whose seed runs are all in `tests`: per query, the mean of their scores.

    Example:
        >>> config = MetricConfig()
        >>> runs = {name: Evaluation(config, {"ndcg@10": {"q1": score, "q2": 0.0}}, {"ndcg@10": score / 2})
        ...         for name, score in (("random-batch256-bf16", 0.25), ("random-batch256-bf16-seed14", 0.75))}
        >>> pooled(runs)["random-batch256-bf16 seeds 13+14"].per_query["ndcg@10"]
        {'q1': 0.5, 'q2': 0.0}
    """
    pools = {}
    for name, members in SEED_POOLS.items():
        if all(member in tests for member in members):
            runs = [tests[member] for member in members]
            per_query = {
                metric: {qid: sum(run.per_query[metric][qid] for run in runs) / len(runs) for qid in scores}
                for metric, scores in runs[0].per_query.items()
            }
            mean = {metric: sum(scores.values()) / len(scores) for metric, scores in per_query.items()}
            pools[name] = Evaluation(runs[0].config, per_query, mean)
    return pools


def _significance(tests: dict[str, Evaluation]) -> list[PairedTest]:
    family = [
        paired_test(
            tests[baseline].per_query[metric],
            tests[system].per_query[metric],
            metric=metric,
            baseline_name=baseline,
            system_name=system,
            seed=0,
        )
        for system, baseline in PAIRS
        if system in tests and baseline in tests
        for metric in METRICS
    ]
    return adjust(family, "holm") if family else []


def _machine() -> str:
    return f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__} (CPU)"


def write(results: dict[str, Any], stem: Path) -> None:
    """Write `<stem>.json` (everything) and `<stem>.md` (the tables)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(results))
    print(markdown(results), flush=True)


def markdown(results: dict[str, Any]) -> str:
    """The comparison as Markdown: setup, one row per system, then the significance tests."""
    setup, data = results["setup"], results["data"]
    source = "generated" if results["queries"] == "generated" else "real"
    lines = [
        f"# Negative samplers on {results['dataset']}",
        "",
        f"- queries: {QUERY_NOTES.get(results['queries'], results['queries'])}; "
        f"training pairs {data.get('train_pairs_real', 0)} real / {data.get('train_pairs_generated', 0)} generated; "
        f"test queries {data.get('test_queries_real', 0)} real / {data.get('test_queries_generated', 0)} generated",
        f"- taxonomy for TB-HNS: {results['taxonomy']}"
        + (
            " (INDUCED: Ward clustering of base-encoder embeddings; the catalog has none)"
            if "induced" in results["taxonomy"]
            else ""
        ),
        f"- catalog: {data['products']} products "
        + (
            f"(seeded subset, judged products kept; limit {setup['catalog_limit']})"
            if setup["catalog_limit"]
            else "(all)"
        )
        + ", ranked exactly (in-memory cosine) for validation and test",
        f"- every system unless its overrides say otherwise: {setup['steps']} steps, batch {setup['batch_size']}, "
        f"max_seq_length {setup['max_seq_length']}, lr {setup['learning_rate']}, {setup['loss']} loss, seed "
        f"{setup['seed']}, validation every {setup['eval_every']} steps; weights of the best validation step are "
        "tested",
        *_overrides(results["systems"]),
        f"- relevant = grade >= {setup['relevance_threshold']}; {setup['machine']}; this dataset's comparison took "
        f"{results['wall_s'] / 60:.1f} min wall; 15-min load average at the end: "
        f"{results.get('load_average_15min', 'not recorded')} (other jobs share the 2 cores, so train seconds are "
        "only roughly comparable)",
        "",
        f"| system | test Recall@24 ({source}) | test NDCG@10 ({source}) | best val Recall@24 | best val NDCG@10 "
        "| steps-to-best-validation | train s | negatives by level |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in results["systems"].items():
        steps = f"{row['best_step']} / {row['steps']}" if "steps" in row else "-"
        if "stage2" in row:
            steps += f" + ROAR {row['stage2']['best_step']} / {row['stage2']['steps']}"
        levels = ", ".join(f"{k} {v}" for k, v in row.get("levels", {}).items()) or (
            "in-batch only" if _sampler(name) == "random" else "-"
        )
        if row.get("masked", {}).get("negatives"):
            levels += f"; masked {row['masked']['masked_negatives'] / row['masked']['negatives']:.1%} of all negatives"
        if "train_pairs" in row:
            levels += f"; its own {row['train_pairs']} training pairs"
        lines.append(
            f"| {name if name != 'base' else 'base (no training)'} | {row['test']['recall@24']:.4f} | "
            f"{row['test']['ndcg@10']:.4f} | {row['validation']['recall@24']:.4f} | "
            f"{row['validation']['ndcg@10']:.4f} | {steps} | "
            f"{row.get('train_s', '-')} | {levels} |"
        )
    if results.get("pools"):
        lines += [
            "",
            "Seed pools: per test query, the mean of the named seed runs' scores (tested below as one system):",
            "",
            "| pool | seed runs | test Recall@24 | test NDCG@10 |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {name} | {', '.join(pool['members'])} | {pool['test']['recall@24']:.4f} | "
            f"{pool['test']['ndcg@10']:.4f} |"
            for name, pool in results["pools"].items()
        ]
    if results["significance"]:
        lines += [
            "",
            f"Paired randomization test on the {next(iter(results['systems'].values()))['test_queries']} test "
            "queries (10,000 sign flips; Holm-corrected over the family below):",
            "",
            "| comparison | metric | mean diff | 95% CI | p | p (Holm) |",
            "|---|---|---|---|---|---|",
        ]
        for t in results["significance"]:
            lines.append(
                f"| {t['system']} vs {t['baseline']} | {t['metric']} | {t['mean_diff']:+.4f} | "
                f"[{t['ci_low']:+.4f}, {t['ci_high']:+.4f}] | {t['p_rand']:.4f} | {t['p_adjusted']:.4f} |"
            )
    return "\n".join(lines) + "\n"


def _overrides(systems: dict[str, Any]) -> list[str]:
    """One line naming what each system of `systems` changes besides its sampler, loss and `MASK`'s defaults
    (none: no line)."""
    changed = {
        name: {
            k: v for k, v in SYSTEMS[name].items() if k not in ("sampler", "loss") and (k not in MASK or v != MASK[k])
        }
        for name in systems
        if name in SYSTEMS
    }
    described = [f"{name} ({', '.join(f'{k} {v}' for k, v in keys.items())})" for name, keys in changed.items() if keys]
    return [f"- overrides (steps: a fraction of the steps above): {'; '.join(described)}"] if described else []


if __name__ == "__main__":
    main()
