"""Run every system of a benchmark config through the real OpenSearch and write the report.

Same catalog, same cluster, same queries for every system; queries come from a held-out split that training
never saw (the split is recomputed with the trainer's seed and fractions, so both sides agree).
"""

from __future__ import annotations

import re
import time
import tomllib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tqdm import tqdm

from tbhns_opensearch.bench.metrics import MetricConfig
from tbhns_opensearch.bench.report import BenchResult, SystemResult, write_report
from tbhns_opensearch.bench.runs import Qrels, RankedRun, Run, write_qrels, write_ranked_run
from tbhns_opensearch.bench.significance import compare_to_baseline
from tbhns_opensearch.catalog import Product, read_catalog
from tbhns_opensearch.catalog.adapters import ADAPTERS, load_judgments, read_dataset
from tbhns_opensearch.config import OpenSearchConfig
from tbhns_opensearch.errors import BenchError
from tbhns_opensearch.training.examples import LabelledQuery, read_labelled_queries, split_by_query


@dataclass(frozen=True)
class SystemSpec:
    """One system: a search mode with an encoder (none for bm25)."""

    name: str
    mode: str  # bm25, semantic, personalized, hybrid
    encoder: str = ""  # sentence-transformers dir or name; empty for bm25


@dataclass(frozen=True)
class BenchConfig:
    """A benchmark: which catalog, which labelled queries, which systems."""

    title: str
    systems: tuple[SystemSpec, ...]
    catalog: str = ""  # a dataset name (icecat, amazon-uk-toys, ...) or a catalog file
    queries: str = "judgments"  # "judgments" (the dataset's own) or a labelled-queries JSONL
    source: str = "real"  # real | generated | simulated: where the queries came from
    split: str = "test"  # evaluate this split of split_by_query: validation, test, or all (no split)
    split_seed: int = 13  # must equal the trainer's seed and fractions
    validation_fraction: float = 0.15
    test_fraction: float = 0.3
    threshold: int = 1  # grade >= threshold counts as relevant for Recall and MRR
    depth: int = 100  # hits kept per query
    concurrency: tuple[int, ...] = (1, 4)  # client threads for the QPS measurement
    baselines: tuple[str, ...] = ("bm25",)  # significance families: each system vs each of these
    breakdown: str | None = None  # "top_category": group queries by their relevant products' top category
    data_dir: str | None = None
    training_config: str | None = None  # take catalog and held-out split from this `tbhns train` config

    def __post_init__(self) -> None:
        if self.split not in ("validation", "test", "all") or (self.training_config and self.split == "all"):
            raise BenchError(f"split must be validation, test or all (all not with training_config), got {self.split!r}")
        names = [system.name for system in self.systems]
        missing = [name for name in self.baselines if name not in names]
        if missing:
            raise BenchError(f"baselines {missing} are not among the systems {names}; name them in [[systems]]")

    @classmethod
    def from_toml(cls, path: str | Path) -> "BenchConfig":
        """Read a config like `benchmarks/configs/icecat.toml`."""
        raw = tomllib.loads(Path(path).read_text())
        try:
            systems = tuple(SystemSpec(**system) for system in raw.pop("systems"))
            for key in ("concurrency", "baselines"):
                if key in raw:
                    raw[key] = tuple(raw[key])
            return cls(systems=systems, **raw)
        except (KeyError, TypeError) as exc:
            raise BenchError(f"benchmark config {path} is invalid: {exc}; see benchmarks/configs/*.toml") from exc


@dataclass(frozen=True)
class QuerySet:
    """The evaluated queries: qid -> text, qid -> {product id: grade}, and the labelled queries behind them."""

    texts: dict[str, str]
    qrels: Qrels


def load_inputs(config: BenchConfig) -> tuple[list[Product], QuerySet]:
    """The catalog and the evaluated split: from a training config (the very split `tbhns train` held out),
    or from the dataset's judgments / a labelled-queries file split with the trainer's seed and fractions."""
    if config.training_config:
        from tbhns_opensearch.training.config import load_train_config
        from tbhns_opensearch.training.data import prepare_data

        train_config = load_train_config(config.training_config)
        data = prepare_data(train_config.data, train_config.seed)
        held_out = getattr(data, config.split)
        ids = query_ids(list(held_out.queries.values()))
        texts = {ids[text]: text for text in held_out.queries.values()}
        qrels = {ids[held_out.queries[key]]: dict(grades) for key, grades in held_out.qrels.items()}
        return list(data.products), QuerySet(texts, qrels)
    stream = read_dataset(config.catalog, config.data_dir) if config.catalog in ADAPTERS else read_catalog(config.catalog)
    if config.queries == "judgments":
        labelled = [LabelledQuery.from_judgment(j, config.source) for j in load_judgments(config.catalog, config.data_dir)]
    else:
        labelled = list(read_labelled_queries(config.queries))
    if config.split != "all":
        splits = split_by_query(labelled, seed=config.split_seed, validation=config.validation_fraction,
                                test=config.test_fraction)  # fmt: skip
        labelled = list(getattr(splits, config.split))
    ids = query_ids([q.query for q in labelled])
    qrels: Qrels = {}
    for query in labelled:
        grades = qrels.setdefault(ids[query.query], {})
        grades[query.product_id] = max(grades.get(query.product_id, 0), query.grade)
    return list(stream), QuerySet({qid: text for text, qid in ids.items()}, qrels)


def query_ids(texts: Sequence[str]) -> dict[str, str]:
    """Stable ids (q0001 ...) for query texts, in sorted order (TREC ids hold no whitespace)."""
    return {text: f"q{number:04d}" for number, text in enumerate(sorted(set(texts)), start=1)}


def run_system(search: Any, texts: dict[str, str], mode: str, depth: int) -> tuple[Run, list[float]]:
    """Each query once through `search.search`, sequentially: the run and per-query latencies (seconds)."""
    run: Run = {}
    latencies = []
    for qid, text in tqdm(texts.items(), desc=mode, unit="q", leave=False):
        started = time.perf_counter()
        response = search.search(text, mode=mode, k=depth)
        latencies.append(time.perf_counter() - started)
        run[qid] = {hit.id: hit.score for hit in response.hits}
    return run, latencies


def measure_qps(search: Any, texts: Sequence[str], mode: str, clients: int, depth: int) -> float:
    """Queries per second with `clients` concurrent threads sending all `texts`."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(lambda text: search.search(text, mode=mode, k=depth), texts))
    return len(texts) / (time.perf_counter() - started)


def top_category_groups(qrels: Qrels, products: Sequence[Product]) -> dict[str, str]:
    """Each query's group: the most common top-level category among its relevant products."""
    top = {p.id: (p.taxonomy_path[0] if p.taxonomy_path else "(none)") for p in products}
    groups = {}
    for qid, grades in qrels.items():
        votes = Counter(top.get(pid, "(none)") for pid, grade in grades.items() if grade > 0)
        if votes:
            groups[qid] = votes.most_common(1)[0][0]
    return groups


def alias_for(catalog: str, encoder: str) -> str:
    """The index alias a catalog is ingested under for one encoder."""
    slug = re.sub(r"[^a-z0-9]+", "-", f"bench-{Path(catalog).stem}-{Path(encoder).name}".lower()).strip("-")
    return slug[:200]


@dataclass
class BenchRun:
    """Inputs resolved once; `run()` ingests what is missing, runs every system and writes the report."""

    config: BenchConfig
    opensearch: OpenSearchConfig
    output_dir: Path
    default_encoder: str = "all-MiniLM-L6-v2"
    products: list[Product] = field(default_factory=list)  # filled by run()

    def run(self) -> BenchResult:
        from tbhns_opensearch.cluster import make_client
        from tbhns_opensearch.query.service import SearchClient

        config = self.config
        self.products, query_set = load_inputs(config)
        texts, qrels = query_set.texts, query_set.qrels
        client = make_client(self.opensearch)
        metric_config = MetricConfig(threshold=config.threshold)
        runs_dir = self.output_dir / "runs"
        runs_dir.mkdir(parents=True, exist_ok=True)
        write_qrels(runs_dir / "qrels.txt", qrels)
        systems = []
        for spec in tqdm(config.systems, desc="systems", unit="system"):
            encoder = spec.encoder or self.default_encoder
            alias = self._ensure_ingested(client, encoder)
            search = SearchClient(self.opensearch, index=alias, encoder=encoder)
            run_system(search, dict(list(texts.items())[:5]), spec.mode, config.depth)  # warm-up: model, caches
            run, latencies = run_system(search, texts, spec.mode, config.depth)
            qps = {f"qps@{n}": f"{measure_qps(search, list(texts.values()), spec.mode, n, config.depth):.1f}"
                   for n in config.concurrency}  # fmt: skip
            ranked = RankedRun(spec.name, run, spec.mode, config.source, encoder=spec.encoder, metadata={"alias": alias, **qps})
            write_ranked_run(runs_dir / f"{spec.name}.trec", ranked)
            systems.append(SystemResult.from_run(ranked, qrels, metric_config, latencies_s=latencies))
        per_query = {s.name: s.evaluation.per_query for s in systems}
        metrics = ("recall@24", "ndcg@10", "mrr@100")
        significance = tuple(
            test for baseline in config.baselines for test in compare_to_baseline(per_query, baseline, metrics)
        )
        breakdowns = {"top_category": top_category_groups(qrels, self.products)} if config.breakdown else {}
        environment = {"opensearch": client.info()["version"]["number"], "queries": str(len(texts))}
        result = BenchResult(
            title=config.title,
            dataset=f"{config.catalog or config.training_config} ({len(texts)} {config.source} queries, split={config.split})",
            systems=tuple(systems),
            baseline=config.baselines[0],
            significance=significance,
            breakdowns=breakdowns,
            environment=environment,
        )
        write_report(result, self.output_dir)
        return result

    def _ensure_ingested(self, client: Any, encoder: str) -> str:
        from tbhns_opensearch.encoder import Encoder
        from tbhns_opensearch.index.ingest import IngestConfig, ingest_products
        from tbhns_opensearch.index.templates import IndexConfig

        alias = alias_for(self.config.catalog or Path(self.config.training_config or "catalog").stem, encoder)
        if client.indices.exists_alias(name=alias) and client.count(index=alias)["count"] == len(self.products):
            return alias
        ingest_products(client, self.products, Encoder(encoder), IndexConfig(alias=alias), IngestConfig(rebuild=True))
        return alias
