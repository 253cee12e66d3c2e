"""Run every system of a benchmark config through the real OpenSearch and write the report.

Same catalog, same cluster, same queries for every system; queries come from the split training held out,
as training wrote it (a model's `split.json`) or makes it (a training config): `bench.held_out`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tbhns_opensearch.bench.breakdown import HISTORY_EDGES, check_history_edges, history_bucket, query_shape
from tbhns_opensearch.bench.held_out import (
    NO_SOURCE,
    check_agreement,
    config_source,
    file_source,
    held_out,
    model_sources,
    model_split_files,
)
from tbhns_opensearch.bench.passes import (
    ORDER_SEED,
    WARM_UP_QUERIES,
    SystemUnderTest,
    measure_qps,
    run_interleaved,
)
from tbhns_opensearch.bench.report import BenchResult, SystemResult, write_report
from tbhns_opensearch.catalog import Product, read_catalog
from tbhns_opensearch.catalog.adapters import ADAPTERS, dataset_dir, read_dataset
from tbhns_opensearch.catalog.judgments import graded_qrels
from tbhns_opensearch.config import DEFAULT_ENCODER, OpenSearchConfig, is_count
from tbhns_opensearch.errors import BenchError
from tbhns_opensearch.eval.metrics import MetricConfig
from tbhns_opensearch.eval.queries import load_labelled_queries
from tbhns_opensearch.eval.runs import Qrels, RankedRun, write_qrels, write_ranked_run
from tbhns_opensearch.eval.significance import cluster_means, compare_to_baseline
from tbhns_opensearch.index.documents import catalog_fingerprint
from tbhns_opensearch.index.templates import IndexConfig, load_template
from tbhns_opensearch.query.fusion import HybridConfig, bm25_weighted
from tbhns_opensearch.query.results import USER_MODES
from tbhns_opensearch.textfiles import read_config_file
from tbhns_opensearch.users.events import UserEvent
from tbhns_opensearch.users.profiles import PersonalizationConfig
from tbhns_opensearch.users.sequences import (
    held_out_user,
    named_products,
    read_order_sequences,
    select_users,
    sequence_queries,
)
from tbhns_opensearch.users.sources import HeldOutUser, UserQuery, aisle_queries, instacart_holdout, split_users


@dataclass(frozen=True)
class BenchSystem:
    """One benchmarked system (`[[systems]]` in a config): a search mode with an encoder (none for bm25)."""

    name: str = field(metadata={"help": "what the report and the runs call the system"})
    mode: str = field(metadata={"help": "search mode: bm25, semantic, personalized or hybrid"})
    encoder: str = field(default="", metadata={"help": "sentence-transformers directory or name; empty for bm25"})
    personalize: bool = field(
        default=True, metadata={"help": "send the query's user (configs with [users]); false: a plain search"}
    )
    hybrid_depth: int = field(
        default=0,
        metadata={"help": "hybrid: candidates per sub-query (at least the config's depth); 0: HybridConfig's"},
    )
    hybrid_bm25_weight: float | None = field(
        default=None,
        metadata={"help": "hybrid min-max: the BM25 weight (the vector's: 1 - it); None: HybridConfig's"},
    )
    user_ttl_s: float = field(
        default=0.0,
        metadata={"help": "seconds a user's profile read is reused (SearchClient.user_ttl_s); 0: read on every query"},
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.user_ttl_s < float("inf"):
            raise BenchError(
                f"system {self.name!r}: user_ttl_s must be a finite number of seconds >= 0 (0: read the "
                f"profile on every query), got {self.user_ttl_s}"
            )
        if self.hybrid_bm25_weight is not None and not 0.0 <= self.hybrid_bm25_weight <= 1.0:
            raise BenchError(
                f"system {self.name!r}: hybrid_bm25_weight must be in [0, 1] (the vector weight is 1 - "
                f"it), got {self.hybrid_bm25_weight}"
            )

    def hybrid(self) -> HybridConfig | None:
        """The hybrid settings this system overrides; None: `HybridConfig`'s defaults.

        Example:
            >>> BenchSystem("h", "hybrid", hybrid_depth=24, hybrid_bm25_weight=0.6).hybrid().weights
            (0.6, 0.4)
        """
        changes: dict[str, Any] = {"depth": self.hybrid_depth} if self.hybrid_depth else {}
        if self.hybrid_bm25_weight is not None:
            changes["weights"] = bm25_weighted(self.hybrid_bm25_weight)
        return HybridConfig(**changes) if changes else None


@dataclass(frozen=True)
class UsersSpec:
    """Real users whose held-out purchases are the relevant products (`[users]` in a config).

    Two protocols, both named by Instacart's `products.csv` (department > aisle) under the config's data_dir;
    each (user, aisle of a held-out product) is a query whose text is the aisle name (derived from categories,
    not typed by shoppers), relevant = the user's held-out products in that aisle:

    - `order_lines = "<path>"` (a CSV in the sequences layout, `users.sequences`; a relative path is read from
      the working directory, as every path of a config): per user, the whole LAST order is held out and every
      earlier order is the history. The config's `split` picks users with `users.sequences.select_users`
      (`seed`, `validation`, `test`; "all" evaluates everyone, so a file of other users in the
      same layout is evaluated unchanged). The catalog is the products the file names. History in orders.
    - without it (Instacart's Kaggle `orders.csv` and `order_products__prior.csv`): per user, the tail of the
      last order (`holdout`) is held out (`users.sources`); users are split into validation
      (`validation_share`) and test by a seeded hash, as in `benchmarks/personalization_instacart.py`.
      History in purchases.

    `alpha` is tuned on the validation users by the offline studies (`benchmarks/personalization_*.py`).
    """

    source: str = field(
        default="instacart",
        metadata={"help": "the catalog that names the products (Instacart is the only real users set)"},
    )
    order_lines: str = field(
        default="", metadata={"help": "order-lines CSV (sequences layout): the whole-last-order protocol"}
    )
    holdout: float = field(default=0.5, metadata={"help": "without order_lines: share of the last order held out"})
    validation_share: float = field(
        default=0.3, metadata={"help": "without order_lines: share of users in validation (the rest: test)"}
    )
    validation: float = field(
        default=0.2, metadata={"help": "with order_lines: share of users in validation (select_users)"}
    )
    test: float = field(default=0.2, metadata={"help": "with order_lines: share of users in test (the rest: train)"})
    seed: int = field(default=0, metadata={"help": "the user split's seed"})
    min_history: int = field(default=3, metadata={"help": "fewer purchases: the plain query (fallback)"})
    half_life: float = field(default=5.0, metadata={"help": "recency half-life, in orders"})
    alpha: float = field(default=0.4, metadata={"help": "weight of the user vector (fixed blend)"})
    history_buckets: tuple[int, ...] = field(
        default=(),
        metadata={
            "help": "lower bounds of the history-length buckets after 0 "
            "[default: (5, 20) orders with order_lines, else (1, 5) purchases]"
        },
    )

    def __post_init__(self) -> None:
        if self.source != "instacart":
            raise BenchError(f"[users] source must be 'instacart' (the only real users set), got {self.source!r}")
        other = ("holdout", "validation_share") if self.order_lines else ("validation", "test")
        defaults = {spec.name: spec.default for spec in fields(self)}
        changed = [name for name in other if getattr(self, name) != defaults[name]]
        if changed:
            raise BenchError(
                f"[users] {changed[0]} applies only {'without' if self.order_lines else 'with'} "
                f"order_lines (order_lines = {self.order_lines!r}); drop {changed[0]}"
            )
        if not (0 <= self.validation and 0 <= self.test and self.validation + self.test < 1):
            raise BenchError(
                f"[users] validation = {self.validation} and test = {self.test} must be shares >= 0 "
                "that leave training users (sum below 1); lower them"
            )
        edges = self.history_buckets or ((5, 20) if self.order_lines else HISTORY_EDGES)
        object.__setattr__(self, "history_buckets", check_history_edges(edges))

    def personalization(self) -> PersonalizationConfig:
        return PersonalizationConfig(
            event_weights={"purchase": 1.0}, half_life=self.half_life, min_history=self.min_history, alpha=self.alpha
        )


@dataclass(frozen=True)
class BenchConfig:
    """A benchmark: which catalog, which labelled queries, which systems."""

    title: str = field(metadata={"help": "the report's title"})
    systems: tuple[BenchSystem, ...] = field(metadata={"help": "the systems compared ([[systems]] tables)"})
    catalog: str = field(
        default="", metadata={"help": "a dataset name (icecat, amazon-uk-toys, ...) or a catalog file"}
    )
    queries: str = field(
        default="judgments", metadata={"help": '"judgments" (the dataset\'s own) or a labelled-queries JSONL'}
    )
    judgments: str = field(
        default="",
        metadata={"help": "queries = \"judgments\": a file in the dataset's layout [default: the dataset's own]"},
    )
    source: str = field(default="real", metadata={"help": "real, generated or simulated: where the queries came from"})
    split: str = field(
        default="test",
        metadata={"help": "evaluate this split: validation or test (the split training held out), or all"},
    )
    split_file: str = field(
        default="",
        metadata={"help": "the split.json `tbhns train` wrote beside its model (or that model's directory)"},
    )
    split_config: str = field(
        default="",
        metadata={
            "help": "a `tbhns train` config whose run splits these queries (its seed and [data] fractions), "
            "for systems without a trained model's split.json"
        },
    )
    threshold: int = field(default=1, metadata={"help": "grade >= threshold counts as relevant for Recall and MRR"})
    depth: int = field(default=100, metadata={"help": "hits kept per query"})
    encode_workers: int = field(
        default=1, metadata={"help": "encoder processes for the catalog's ingest (Encoder.workers; 1: in process)"}
    )
    concurrency: tuple[int, ...] = field(default=(1, 4), metadata={"help": "client threads for the QPS measurement"})
    qps_queries: int = field(
        default=500, metadata={"help": "queries sent per QPS measurement (the first ones, in query id order)"}
    )
    primary_metric: str = field(default="ndcg@10", metadata={"help": "metric of the breakdown tables and delta plots"})
    baselines: tuple[str, ...] = field(
        default=("bm25",), metadata={"help": "significance families: each system vs each of these"}
    )
    breakdown: tuple[str, ...] = field(
        default=(), metadata={"help": "query groups to break results down by (BREAKDOWNS): top_category, query_shape"}
    )
    data_dir: str | None = field(
        default=None, metadata={"help": "folder of the dataset [default: ../shared/data/<dataset>]"}
    )
    training_config: str | None = field(
        default=None, metadata={"help": "take catalog, queries and held-out split from this `tbhns train` config"}
    )
    users: UsersSpec | None = field(
        default=None, metadata={"help": "queries come from real users' held-out purchases ([users] table)"}
    )

    def __post_init__(self) -> None:
        if self.split not in ("validation", "test", "all") or (self.training_config and self.split == "all"):
            raise BenchError(
                f"split must be validation, test or all (all not with training_config), got {self.split!r}"
            )
        if self.split_config and (self.training_config or self.users):
            raise BenchError(
                f"split_config = {self.split_config!r} splits this config's own labelled queries; "
                f"{'training_config' if self.training_config else '[users]'} brings its split: drop split_config"
            )
        shallow = [system.name for system in self.systems if 0 < system.hybrid_depth < self.depth]
        if shallow:
            raise BenchError(
                f"systems {shallow} have hybrid_depth below depth = {self.depth} hits per query; "
                "lower depth or raise their hybrid_depth"
            )
        unknown = [name for name in self.breakdown if name not in BREAKDOWNS]
        if unknown:
            raise BenchError(f"unknown breakdown {unknown}; valid breakdowns are {sorted(BREAKDOWNS)}")
        if not is_count(self.encode_workers, minimum=1):
            raise BenchError(
                f"encode_workers = {self.encode_workers!r}: give 1 or more encoder processes (1: in process)"
            )
        names = [system.name for system in self.systems]
        missing = [name for name in self.baselines if name not in names]
        if missing:
            raise BenchError(f"baselines {missing} are not among the systems {names}; name them in [[systems]]")

    def check_encoders(self) -> None:
        """Raise a BenchError naming every system whose model directory is missing (`missing_encoder`) and
        the command that trains it, before any node starts or any index is built."""
        missing = [problem for spec in self.systems if (problem := missing_encoder(spec))]
        if missing:
            raise BenchError("; ".join(missing))

    def check_split(self) -> None:
        """Raise a BenchError with the fix when `split` asks for held-out queries and nothing says which
        (`bench.held_out`): no training_config, split_file or split_config, and no system's model directory
        holds a split.json.

        Example:
            >>> BenchConfig("t", (BenchSystem("bm25", "bm25"),), catalog="icecat", split="all").check_split()
        """
        sources = (self.training_config, self.split_file, self.split_config, self.users)
        if self.split != "all" and not any(sources) and not model_split_files(self.system_encoders()):
            raise BenchError(NO_SOURCE.format(split=self.split))

    def system_encoders(self) -> list[tuple[str, str]]:
        """(name, encoder) of every system."""
        return [(system.name, system.encoder) for system in self.systems]

    def catalog_name(self) -> str:
        """What index aliases and the report call the catalog: the catalog, else the order-lines file (its
        folder and name), else the training config's name.

        Example:
            >>> users = UsersSpec(order_lines="data/instacart-sequences/order_lines.csv")
            >>> BenchConfig("t", (BenchSystem("bm25", "bm25"),), users=users).catalog_name()
            'instacart-sequences-order_lines'
        """
        if self.catalog:
            return self.catalog
        if self.users and self.users.order_lines:
            lines = Path(self.users.order_lines)
            return f"{lines.parent.name}-{lines.stem}" if lines.parent.name else lines.stem
        return Path(self.training_config or "catalog").stem

    @classmethod
    def from_toml(cls, path: str | Path) -> BenchConfig:
        """Read a config like `benchmarks/configs/icecat.toml`."""
        raw = read_config_file(path, "benchmark config", "benchmarks/configs/*.toml", BenchError)
        own_split = [key for key in ("split_seed", "validation_fraction", "test_fraction") if key in raw]
        if own_split:
            raise BenchError(
                f"benchmark config {path}: {', '.join(own_split)}: the benchmark no longer splits queries with "
                "fractions of its own; the split comes from a trained system's split.json or split_config = \"<the "
                'tbhns train config>"; drop them'
            )
        try:
            systems = tuple(BenchSystem(**system) for system in raw.pop("systems"))
            if "users" in raw:
                raw["users"] = UsersSpec(**raw["users"])
            if isinstance(raw.get("breakdown"), str):
                raw["breakdown"] = [raw["breakdown"]]
            for key in ("concurrency", "baselines", "breakdown"):
                if key in raw:
                    raw[key] = tuple(raw[key])
            return cls(systems=systems, **raw)
        except (KeyError, TypeError) as exc:
            raise BenchError(f"benchmark config {path} is invalid: {exc}; see benchmarks/configs/*.toml") from exc


@dataclass(frozen=True)
class QuerySet:
    """The evaluated queries: qid -> text, qid -> {product id: grade}; with users, who asks each query,
    every user's history, the query groups (history length, cold items) for the breakdowns and a label."""

    texts: dict[str, str]
    qrels: Qrels
    user_of: dict[str, str] = field(default_factory=dict)
    events: tuple[UserEvent, ...] = ()
    groups: dict[str, dict[str, str]] = field(default_factory=dict)
    label: str = ""  # what the queries are, where the data source alone does not say (shown under every table)


def load_inputs(config: BenchConfig) -> tuple[list[Product], QuerySet]:
    """The catalog and the evaluated queries: real users' held-out purchases (`[users]`), or the held-out split
    of a training config (catalog and queries too), or the dataset's judgments / a labelled-queries file, all
    of them or the split training held out (`bench.held_out`: a model's split.json or a training config's)."""
    config.check_split()
    if config.users:
        return load_user_queries(config.users, config.split, config.data_dir)
    if config.training_config:
        from tbhns_opensearch.training.config import load_train_config
        from tbhns_opensearch.training.data import prepare_data

        train_config = load_train_config(config.training_config)
        data = prepare_data(train_config.data, train_config.seed)
        evaluated = getattr(data, config.split)
        check_agreement(
            evaluated.queries.values(),
            config.split,
            f"training_config {config.training_config}",
            model_sources(config.system_encoders()),
        )
        ids = query_ids(list(evaluated.queries.values()))
        texts = {ids[text]: text for text in evaluated.queries.values()}
        qrels = {ids[evaluated.queries[key]]: dict(grades) for key, grades in evaluated.qrels.items()}
        return list(data.products), QuerySet(texts, qrels)
    stream = (
        read_dataset(config.catalog, config.data_dir) if config.catalog in ADAPTERS else read_catalog(config.catalog)
    )
    products = list(stream)
    labelled = load_labelled_queries(config.queries, config.catalog, config.data_dir, config.judgments, config.source)
    if config.split != "all":
        sources = [file_source(config.split_file, f"split_file {config.split_file}")] if config.split_file else []
        sources += model_sources(config.system_encoders())
        if config.split_config:
            data = (config.catalog, config.queries, config.judgments)
            sources.append(config_source(config.split_config, labelled, {p.id for p in products}, data))
        labelled = held_out(labelled, config.split, sources)
    ids = query_ids([q.query for q in labelled])
    return products, QuerySet({qid: text for text, qid in ids.items()}, graded_qrels(labelled, key=ids.__getitem__))


def load_user_queries(spec: UsersSpec, split: str, data_dir: str | None) -> tuple[list[Product], QuerySet]:
    """The catalog and the queries of the `split` users (validation, test or all), by `spec`'s protocol
    (`UsersSpec`): one per (user, aisle of a held-out product), relevant = the user's held-out products in it."""
    catalog = list(read_dataset(spec.source, dataset_dir(spec.source, data_dir)))
    if spec.order_lines:
        return _sequence_queries(spec, split, catalog)
    users = instacart_holdout(dataset_dir(spec.source, data_dir), spec.holdout)
    validation, test = split_users(users, spec.validation_share, spec.seed)
    chosen = {"validation": validation, "test": test, "all": users}[split]
    aisle_of = {product.id: product.taxonomy_path[-1] for product in catalog if product.taxonomy_path}
    purchases = {user.user_id: len(user.history) for user in chosen}
    bought_before = {event.product_id for user in users for event in user.history}
    groups = {
        "user history (purchases)": lambda query: history_bucket(purchases[query.user_id], spec.history_buckets),
        "target items": lambda query: "seen before" if query.targets & bought_before else "cold (never bought before)",
    }
    return catalog, _user_query_set(aisle_queries(chosen, aisle_of), chosen, groups, DERIVED_QUERIES)


DERIVED_QUERIES = "REAL users; DERIVED queries (aisle names of their held-out products, not typed by shoppers)"


def _sequence_queries(spec: UsersSpec, split: str, catalog: list[Product]) -> tuple[list[Product], QuerySet]:
    """The whole-last-order protocol on `spec.order_lines`; the catalog is cut to the products it names."""
    data = read_order_sequences(spec.order_lines, catalog)
    products = named_products(data.users, catalog)
    chosen = select_users(data.users, split, seed=spec.seed, validation=spec.validation, test=spec.test)
    orders = {user.user_id: user.history_orders for user in chosen}
    bought = {user.user_id: {p.product_id for p in user.history} for user in chosen}
    groups = {
        "user history (orders)": lambda query: history_bucket(orders[query.user_id], spec.history_buckets),
        "target items": lambda query: (
            "repurchase (a target bought before by the user)"
            if query.targets & bought[query.user_id]
            else "cold (no target bought before)"
        ),
    }
    label = (
        f"{DERIVED_QUERIES}: per user the whole last order held out, every earlier order the history; "
        f"{data.lines_dropped} of {data.lines_read} order lines dropped for want of a product name"
    )
    queries = sequence_queries(chosen, products)
    return products, _user_query_set(queries, [held_out_user(user) for user in chosen], groups, label)


def _user_query_set(
    queries: Sequence[UserQuery],
    users: Sequence[HeldOutUser],
    groups: Mapping[str, Callable[[UserQuery], str]],
    label: str,
) -> QuerySet:
    """The `QuerySet` of users' aisle queries (qid `u<user>-<aisle>`), their users' histories and groups."""
    texts, qrels, user_of = {}, {}, {}
    grouped: dict[str, dict[str, str]] = {name: {} for name in groups}
    for query in queries:
        qid = "u" + re.sub(r"[^A-Za-z0-9]+", "-", f"{query.user_id}-{query.text}").strip("-")
        texts[qid], qrels[qid], user_of[qid] = query.text, dict.fromkeys(query.targets, 1), query.user_id
        for name, group_of in groups.items():
            grouped[name][qid] = group_of(query)
    events = tuple(event for user in users for event in user.history)
    return QuerySet(texts, qrels, user_of, events, grouped, label)


def query_ids(texts: Sequence[str]) -> dict[str, str]:
    """Stable ids (q0001 ...) for query texts, in sorted order (TREC ids hold no whitespace)."""
    return {text: f"q{number:04d}" for number, text in enumerate(sorted(set(texts)), start=1)}


def top_category_groups(qrels: Qrels, products: Sequence[Product]) -> dict[str, str]:
    """Each query's group: the most common top-level category among its relevant products."""
    top = {p.id: (p.taxonomy_path[0] if p.taxonomy_path else "(none)") for p in products}
    groups = {}
    for qid, grades in qrels.items():
        votes = Counter(top.get(pid, "(none)") for pid, grade in grades.items() if grade > 0)
        if votes:
            groups[qid] = votes.most_common(1)[0][0]
    return groups


BREAKDOWNS: dict[str, Callable[[QuerySet, Sequence[Product]], dict[str, str]]] = {
    "top_category": lambda queries, products: top_category_groups(queries.qrels, products),
    "query_shape": lambda queries, _products: {qid: query_shape(text) for qid, text in queries.texts.items()},
}
"""Query groups a config can break results down by (`breakdown = [...]`): qid -> group."""


def missing_encoder(spec: BenchSystem) -> str | None:
    """What is wrong when `spec`'s encoder names a model directory of this project (under `runs/`, or a path
    starting with `/` or `.`) that does not exist, with the command that trains it; None when it exists or
    is a model name.

    Example:
        >>> missing_encoder(BenchSystem("plain", "semantic", encoder=DEFAULT_ENCODER)) is None
        True
    """
    folder = Path(spec.encoder)
    if not spec.encoder or folder.exists() or not (folder.is_absolute() or spec.encoder.startswith(("runs/", "."))):
        return None
    config = Path("training") / f"{folder.name}.toml"
    train = f"tbhns train {config if config.is_file() else f'<a training config whose output_dir is {folder}>'}"
    return f"system {spec.name!r}: encoder directory {folder} does not exist; train it first: {train}"


def alias_for(catalog: str, encoder: str, data_dir: str | None = None) -> str:
    """The index alias a catalog is ingested under for one encoder: readable, plus a digest of the encoder's
    identity (a local folder's absolute path and weights' mtime, else the name), of the data folder and of the
    product template, so two encoders sharing a folder name, a retrained folder, another copy of a set or
    an index built from an older template is never reused.

    Example:
        >>> alias_for("icecat", DEFAULT_ENCODER).startswith("bench-icecat-all-minilm-l6-v2-")
        True
    """
    folder = Path(encoder)
    model = encoder
    if folder.is_dir():
        weights = [f.stat().st_mtime_ns for f in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))]
        model = f"{folder.resolve()}|{weights}"
    template = json.dumps(load_template("products"), sort_keys=True)
    identity = f"{model}|{Path(data_dir).resolve() if data_dir else ''}|{template}"
    digest = hashlib.sha1(identity.encode()).hexdigest()[:8]
    slug = re.sub(r"[^a-z0-9]+", "-", f"bench-{Path(catalog).stem}-{folder.name}".lower()).strip("-")
    return f"{slug[:180]}-{digest}"


@dataclass
class BenchRun:
    """Inputs resolved once; `run()` ingests what is missing, runs every system and writes the report."""

    config: BenchConfig
    opensearch: OpenSearchConfig
    output_dir: Path
    default_encoder: str = field(
        default=DEFAULT_ENCODER, metadata={"help": "the encoder of systems that name none (bm25: the index's vectors)"}
    )
    products: list[Product] = field(default_factory=list, metadata={"help": "the catalog, filled by run()"})

    def run(self) -> BenchResult:
        from tbhns_opensearch.cluster import make_client
        from tbhns_opensearch.query import SearchClient

        config = self.config
        config.check_encoders()
        self.products, query_set = load_inputs(config)
        fingerprint = catalog_fingerprint(self.products)  # once: every system's index is checked against it
        texts, qrels = query_set.texts, query_set.qrels
        client = make_client(self.opensearch)
        metric_config = MetricConfig(threshold=config.threshold)
        runs_dir = self.output_dir / "runs"
        runs_dir.mkdir(parents=True, exist_ok=True)
        write_qrels(runs_dir / "qrels.txt", qrels)
        users_by_alias: dict[str, dict[str, Any]] = {}  # systems sharing an encoder share its user profiles
        under_test, aliases = [], {}
        for spec in tqdm(config.systems, desc="indices", unit="system"):
            encoder = spec.encoder or self.default_encoder
            aliases[spec.name] = alias = self._ensure_ingested(client, encoder, fingerprint)
            if alias not in users_by_alias:
                users_by_alias[alias] = self._users(client, alias, encoder, query_set)
            search = SearchClient(
                self.opensearch,
                alias=alias,
                encoder=encoder,
                hybrid=spec.hybrid(),
                user_ttl_s=spec.user_ttl_s,
                **users_by_alias[alias],
            )
            user_of = query_set.user_of if spec.personalize else {}
            under_test.append(SystemUnderTest(spec.name, search, spec.mode, user_of))
        passes = run_interleaved(under_test, texts, config.depth)
        sample = sorted(texts)[: config.qps_queries]
        systems = []
        for spec, system in zip(config.systems, under_test):
            passed = passes[spec.name]
            qps = {f"qps@{n}": f"{measure_qps(system, sample, texts, n, config.depth):.1f}" for n in config.concurrency}
            metadata = {"alias": aliases[spec.name], **qps, "fallback_queries": str(passed.fallbacks)}
            if system.user_of and spec.mode in USER_MODES:
                metadata["user_ttl_s"] = f"{spec.user_ttl_s:g}"  # 0: the profile read on every query
            if passed.methods:
                metadata["personalization"] = ", ".join(f"{method} {n}" for method, n in sorted(passed.methods.items()))
            ranked = RankedRun(spec.name, passed.run, spec.mode, config.source, encoder=spec.encoder, metadata=metadata)
            write_ranked_run(runs_dir / f"{spec.name}.trec", ranked)
            systems.append(
                SystemResult.from_run(
                    ranked, qrels, metric_config, latencies_s=passed.latencies, warm_latencies_s=passed.warm_latencies
                )
            )
        per_query = {s.name: s.evaluation.per_query for s in systems}
        if query_set.user_of:  # a user's queries share one history: pair per user, each user's queries averaged
            per_query = {
                name: {m: cluster_means(scores, query_set.user_of.__getitem__) for m, scores in by_metric.items()}
                for name, by_metric in per_query.items()
            }
        metrics = ("recall@24", "ndcg@10", "mrr@100")
        significance = tuple(
            test for baseline in config.baselines for test in compare_to_baseline(per_query, baseline, metrics)
        )
        breakdowns = {name: BREAKDOWNS[name](query_set, self.products) for name in config.breakdown}
        breakdowns |= query_set.groups
        index, hybrid = IndexConfig(), HybridConfig()
        environment = {
            "opensearch": client.info()["version"]["number"],
            "queries": str(len(texts)),
            "index": (
                f"{index.shards} shard, {index.replicas} replicas; knn_vector HNSW engine={index.engine} "
                f"space={index.space_type} m={index.m} ef_construction={index.ef_construction} "
                f"ef_search={index.ef_search}"
            ),
            "profiles": "read on every personalized query (user_ttl_s = 0) unless a system sets its user_ttl_s",
            "latency": (
                f"one client thread; the systems take turns on each query in a shuffled order (seed {ORDER_SEED}), "
                f"after {WARM_UP_QUERIES} untimed queries each; warm: the queries whose text, and user, the system "
                "had met before (no first encoding, no first profile read)"
            ),
            "hybrid": (
                f"{hybrid.fusion}, weights (bm25, vector) {hybrid.weights}, {max(hybrid.depth, config.depth)} "
                f"candidates per sub-query (the default {hybrid.depth}, raised to the {config.depth} hits kept) "
                "unless a system names its own"
            ),
        }
        users = len(set(query_set.user_of.values()))
        asked = f"queries of {users} users" if users else f"{config.source} queries"
        result = BenchResult(
            title=config.title,
            dataset=f"{config.catalog_name()} ({len(texts)} {asked}, split={config.split})",
            systems=tuple(systems),
            baseline=config.baselines[0],
            significance=significance,
            breakdowns=breakdowns,
            environment=environment,
            primary_metric=config.primary_metric,
            queries=query_set.label,
            paired_by="user" if query_set.user_of else "query",
        )
        write_report(result, self.output_dir)
        return result

    def _users(self, client: Any, alias: str, encoder: str, query_set: QuerySet) -> dict[str, Any]:
        """SearchClient arguments for a config with users: their profiles, built from this alias's product
        vectors, written (idempotently, ids = user ids) to `users-<alias>` (a name outside the product
        template's `<alias>-*` pattern), with each user's last `max_history` products when `encoder`'s
        directory holds a user model (then personalized searches use it; else the fixed blend)."""
        if not self.config.users:
            return {}
        from tbhns_opensearch.users.attention import stored_history_size, user_model_beside
        from tbhns_opensearch.users.store import UsersIngestConfig, ingest_users

        user_model = user_model_beside(encoder)  # loaded once, for every system of this alias
        personalization = replace(self.config.users.personalization(), history_size=stored_history_size(user_model))
        users_index = f"users-{alias}"
        ingest_users(client, query_set.events, UsersIngestConfig(alias, users_index, personalization))
        return {"users_index": users_index, "personalization": personalization, "user_model": user_model}

    def _ensure_ingested(self, client: Any, encoder: str, fingerprint: str) -> str:
        """The alias of `encoder`'s index of this catalog, ingested unless an index of this very catalog
        (`fingerprint`) is already behind it."""
        from tbhns_opensearch.encoder import Encoder
        from tbhns_opensearch.index.ingest import IngestConfig, ingest_products, stored_fingerprint

        alias = alias_for(self.config.catalog_name(), encoder, self.config.data_dir)
        if stored_fingerprint(client, alias) == fingerprint:
            return alias
        with Encoder(encoder, backend="auto", bulk=True, workers=self.config.encode_workers) as catalog_encoder:
            ingest_products(
                client, self.products, catalog_encoder, IndexConfig(alias=alias), IngestConfig(rebuild=True)
            )
        return alias
