"""Training data from a config: catalog, labelled queries, splits by query, training pairs and evaluation sets.

Steps, in order (`prepare_data`):
1. read the catalog (a dataset by name or a file); with `catalog_limit`, keep a seeded sample (judged
   products always kept);
2. labelled queries: the dataset's judgments ("real"), generated ones (`querygen`, "generated", made from
   the kept products) or a labelled-queries JSONL; judgments of products outside the catalog are dropped;
3. split by query (`examples.split_by_query`): no query is in two splits;
4. validation and test keep queries with at least one product graded >= `relevance_threshold` and, with
   `max_eval_relevant`, at most that many (a broad generated query such as "jigsaws" with 800 sources
   cannot score Recall@24 above 24/800, so it says little);
5. training pairs (grade >= `min_grade`); with `unseen_products`, pairs whose positive is relevant to any
   validation or test query are dropped, so evaluation is on products whose queries training never saw;
   with `max_positives_per_query`, a seeded sample of each query's pairs is kept; with `generated_pairs`,
   queries generated from a seeded sample of that many products (one each) join the real training pairs
   (never a query whose text is a validation or test query's).

With `queries = "orders"` (`order_data`) the queries come from REAL users' orders instead (`[personalization]`
order_lines, joined with Instacart's catalog): the catalog is the products the lines name; users are split by a
seeded hash of the user id (`users.sequences.user_split`, the user model's split); training pairs are (aisle of
a product a TRAIN user bought, that product), graded by how often train users bought it, so `min_grade` = 2
trains on products bought twice or more, with one training row per purchase (a product bought often is a
positive often: the popularity within an aisle is what a query without a user can learn), and
`max_positives_per_query` keeps the most bought products of each aisle; validation and test are the validation
and test users' whole LAST orders, one query per (user, aisle), relevant = that order's products in the aisle
(the evaluation protocol of `users.sequences`). The queries are DERIVED from categories, not typed by shoppers,
so they are labelled "generated". `validation`, `test`, `unseen_products` and `max_eval_relevant` do not apply
(the split is by user).

Example:
    >>> data = prepare_data(DataConfig(dataset="icecat", queries="judgments", test=0.3), seed=13)  # doctest: +SKIP
    >>> data.report["train_pairs_real"], len(data.test.queries)  # doctest: +SKIP
    (612, 30)
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from tbhns_opensearch.catalog import Product, read_catalog
from tbhns_opensearch.catalog.adapters import read_dataset
from tbhns_opensearch.catalog.judgments import graded_qrels
from tbhns_opensearch.errors import ConfigError, TrainingError
from tbhns_opensearch.eval.queries import LabelledQuery, load_labelled_queries, query_key
from tbhns_opensearch.eval.splits import split_assignment, split_by_query
from tbhns_opensearch.seeding import keyed_rng
from tbhns_opensearch.taxonomy import Taxonomy
from tbhns_opensearch.taxonomy_assign import read_assignments, with_assigned_paths
from tbhns_opensearch.training.config import DataConfig, PersonalizationTrainConfig
from tbhns_opensearch.training.examples import TrainingPair, make_pairs
from tbhns_opensearch.training.querygen import generate_queries
from tbhns_opensearch.users.sequences import (
    QUERY_FORMS,
    SequenceUser,
    named_products,
    read_order_sequences,
    select_users,
    sequence_queries,
)


@dataclass(frozen=True)
class EvalSet:
    """The queries of one split and their graded qrels, keyed by query key.

    Args:
        queries: qid (the query key) -> query text.
        qrels: qid -> {product id: grade}.
        sources: qid -> "real" or "generated".
    """

    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    sources: dict[str, str]


@dataclass(frozen=True)
class TrainingData:
    """Everything a run trains and validates on.

    Args:
        name: The data's short name (dataset or catalog stem).
        products: The catalog (after `catalog_limit`).
        train_pairs: (query, positive) pairs of the training split.
        train_judgments: Every graded judgment of the training split (the preference stage's groups).
        validation, test: Evaluation sets; training never reads `test`.
        split_of: Query digest -> train | validation | test, written beside the model for `tbhns bench`.
        report: Counts for the model card: products, queries and pairs per source, what was dropped and why.
    """

    name: str
    products: tuple[Product, ...]
    train_pairs: tuple[TrainingPair, ...]
    validation: EvalSet
    test: EvalSet
    report: dict[str, int]
    train_judgments: tuple[LabelledQuery, ...] = ()
    split_of: dict[str, str] = field(default_factory=dict)  # query digest -> split (`eval.splits.write_split`)


def prepare_data(config: DataConfig, seed: int, orders: PersonalizationTrainConfig | None = None) -> TrainingData:
    """Build catalog, pairs and evaluation sets from `config` (see the module docstring for the steps);
    `orders` is the run's `[personalization]` table, which `queries = "orders"` reads."""
    if config.queries == "orders":
        if orders is None:
            raise ConfigError('[data] queries="orders" needs the [personalization] table (order_lines)')
        return order_data(config, orders)
    products = _read_products(config)
    judgments = (
        []
        if config.queries == "generated"
        else load_labelled_queries(config.queries, config.dataset, config.data_dir, config.judgments)
    )
    products = _sample(products, {j.product_id for j in judgments}, config.catalog_limit, seed)
    if config.queries == "generated":
        judgments = _generated(config, products, seed)
    known = {p.id for p in products}
    kept = [j for j in judgments if j.product_id in known]
    if not kept:
        raise TrainingError(
            f"none of the {len(judgments)} labelled queries names a product of the catalog "
            f"({len(products)} products); check that queries and catalog match"
        )
    splits = split_by_query(kept, seed=seed, validation=config.validation, test=config.test)
    report: Counter[str] = Counter(products=len(products), judgments_outside_catalog=len(judgments) - len(kept))
    validation = _eval_set(splits.validation, config, report, "validation")
    test = _eval_set(splits.test, config, report, "test")
    eval_keys = {query_key(j.query) for j in (*splits.validation, *splits.test)}
    pairs = make_pairs([*splits.train, *_augmentation(config, products, eval_keys, seed)], min_grade=config.min_grade)
    if config.unseen_products:
        held_out = {
            pid for split in (validation, test) for grades in split.qrels.values() for pid, g in grades.items() if g
        }
        report["train_pairs_dropped_unseen"] = sum(p.positive_id in held_out for p in pairs)
        pairs = [p for p in pairs if p.positive_id not in held_out]
    if config.max_positives_per_query:
        capped = _cap_per_query(pairs, config.max_positives_per_query, seed)
        report["train_pairs_dropped_cap"] = len(pairs) - len(capped)
        pairs = capped
    if not pairs:
        raise TrainingError(
            f"no training pairs are left for {config.name}; lower min_grade={config.min_grade}, "
            "set unseen_products=false, or add queries"
        )
    for source in ("real", "generated"):
        report[f"train_queries_{source}"] = len({query_key(j.query) for j in splits.train if j.source == source})
        report[f"train_pairs_{source}"] = sum(p.source == source for p in pairs)
    return TrainingData(
        config.name,
        tuple(products),
        tuple(pairs),
        validation,
        test,
        dict(report),
        tuple(splits.train),
        split_assignment(splits),
    )


def order_data(config: DataConfig, orders: PersonalizationTrainConfig) -> TrainingData:
    """Aisle queries of the TRAIN users' orders as training pairs, the validation and test users' last orders
    as evaluation sets (module docstring); never a line of a validation or test user in training.

    Example:
        >>> data = order_data(DataConfig(dataset="instacart", queries="orders"),
        ...                   PersonalizationTrainConfig(order_lines="order_lines.csv"))  # doctest: +SKIP
        >>> data.report["train_users"], len(data.validation.queries)  # doctest: +SKIP
        (309, 614)
    """
    catalog = _read_products(config)
    sequences = read_order_sequences(orders.order_lines, catalog)
    products = named_products(sequences.users, catalog)
    users = {
        name: select_users(sequences.users, name, seed=orders.seed, validation=orders.validation, test=orders.test)
        for name in ("train", "validation", "test")
    }
    text_of = {p.id: QUERY_FORMS[orders.query_form](p.taxonomy_path) for p in products if p.taxonomy_path}
    bought = Counter(
        (text_of[pid], pid)
        for user in users["train"]
        for pid in (*(p.product_id for p in user.history), *user.targets)
        if pid in text_of
    )
    judgments = tuple(LabelledQuery(text, pid, count, "generated") for (text, pid), count in sorted(bought.items()))
    distinct = make_pairs(judgments, min_grade=config.min_grade)
    report: Counter[str] = Counter(
        products=len(products),
        order_lines=sequences.lines_read,
        order_lines_dropped_unnamed=sequences.lines_dropped,
        **{f"{name}_users": len(group) for name, group in users.items()},
    )
    if config.max_positives_per_query:
        capped = _most_bought(distinct, bought, config.max_positives_per_query)
        report["train_pairs_dropped_cap"] = len(distinct) - len(capped)
        distinct = capped
    if not distinct:
        raise TrainingError(
            f"no training pairs: the {len(users['train'])} train users of {orders.order_lines} "
            f"bought no product {config.min_grade} times or more; lower min_grade"
        )
    pairs = [pair for pair in distinct for _ in range(bought[(pair.query, pair.positive_id)])]  # a row per purchase
    report["train_queries_generated"] = len({p.query for p in pairs})
    report["train_pairs_distinct"] = len(distinct)
    report["train_pairs_generated"] = len(pairs)
    validation, test = (
        _last_order_set(users[name], products, orders.query_form, name) for name in ("validation", "test")
    )
    report["validation_queries_generated"], report["test_queries_generated"] = (
        len(validation.queries),
        len(test.queries),
    )
    return TrainingData(config.name, tuple(products), tuple(pairs), validation, test, dict(report), judgments)


def sample_texts(data: TrainingData, n: int = 16) -> list[str]:
    """Up to `n` validation queries and the `n` longest product texts (they test truncation), for export checks.

    Example:
        >>> sample_texts(data, n=2)  # doctest: +SKIP
        ['lego duplo', 'kite', 'LEGO 10969 DUPLO Fire Station | LEGO | Building Sets', 'Red kite | Kites']
    """
    products = sorted(data.products, key=lambda p: len(p.text_for_embedding()), reverse=True)
    return [*list(data.validation.queries.values())[:n], *(p.text_for_embedding() for p in products[:n])]


def build_taxonomy(
    config: DataConfig, products: Sequence[Product], embeddings: np.ndarray | None, seed: int
) -> Taxonomy:
    """The catalog's own taxonomy, one assigned by `tbhns taxonomy assign` (`taxonomy_file`; only the sampler
    sees it, product texts stay as the catalog has them), or one induced from `type_attribute` or by
    clustering `embeddings`.

    Example:
        >>> build_taxonomy(DataConfig(catalog="c.jsonl"), [Product("a", "A", taxonomy_path=("Toys",))], None, 0).source
        'catalog'
    """
    if config.taxonomy == "catalog":
        taxonomy = Taxonomy.from_products(products)
    elif config.taxonomy == "assigned":
        taxonomy = Taxonomy.from_products(
            with_assigned_paths(products, read_assignments(config.taxonomy_file)), "assigned"
        )
    elif config.taxonomy == "induced:attribute":
        taxonomy = Taxonomy.induced(products, attributes=config.type_attribute)
    else:
        taxonomy = Taxonomy.induced(products, embeddings=embeddings, levels=config.taxonomy_levels, seed=seed)
    if all(taxonomy.is_unknown(p.id) for p in products):
        raise TrainingError(
            f"no product of {config.name} has a {config.taxonomy} taxonomy path; use "
            'taxonomy="induced:clustering" or "induced:attribute" for catalogs without one'
        )
    return taxonomy


def _read_products(config: DataConfig) -> list[Product]:
    stream = read_dataset(config.dataset, config.data_dir) if config.dataset else read_catalog(config.catalog)
    return list(stream)


def _generated(config: DataConfig, products: Sequence[Product], seed: int) -> list[LabelledQuery]:
    queries = generate_queries(
        products, seed=seed, per_product=config.per_product, type_attribute=config.type_attribute or None
    )
    return [judgment for query in queries for judgment in query.judgments()]


def _augmentation(config: DataConfig, products: list[Product], eval_keys: set[str], seed: int) -> list[LabelledQuery]:
    """Generated judgments for `generated_pairs` sampled products (one query each), eval query texts excluded."""
    if not config.generated_pairs:
        return []
    chosen = sorted(
        keyed_rng(seed, "augmentation").sample(range(len(products)), min(len(products), config.generated_pairs))
    )
    queries = generate_queries([products[i] for i in chosen], seed=seed, per_product=1, grade_mates=False)
    return [j for query in queries if query_key(query.text) not in eval_keys for j in query.judgments()]


def _sample(products: list[Product], keep: set[str], limit: int, seed: int) -> list[Product]:
    """All of `keep`, then a seeded sample of the rest up to `limit` products (catalog order kept)."""
    if not limit or len(products) <= limit:
        return products
    rest = [i for i, p in enumerate(products) if p.id not in keep]
    chosen = set(keyed_rng(seed, "catalog").sample(rest, max(0, min(len(rest), limit - (len(products) - len(rest))))))
    return [p for i, p in enumerate(products) if p.id in keep or i in chosen]


def _eval_set(judgments: Iterable[LabelledQuery], config: DataConfig, report: Counter[str], split: str) -> EvalSet:
    judgments = list(judgments)
    qrels = graded_qrels(judgments, key=query_key)
    texts: dict[str, str] = {}
    sources: dict[str, str] = {}
    for j in judgments:
        key = query_key(j.query)
        texts.setdefault(key, j.query)
        sources.setdefault(key, j.source)
    kept = {}
    for key, grades in qrels.items():
        relevant = sum(g >= config.relevance_threshold for g in grades.values())
        if not relevant:
            report[f"{split}_queries_dropped_no_relevant"] += 1
        elif config.max_eval_relevant and relevant > config.max_eval_relevant:
            report[f"{split}_queries_dropped_broad"] += 1
        else:
            kept[key] = grades
    if not kept:
        raise TrainingError(
            f"the {split} split has no query with a product graded >= {config.relevance_threshold}"
            f" (max_eval_relevant={config.max_eval_relevant}); raise the {split} fraction"
        )
    for source in ("real", "generated"):
        report[f"{split}_queries_{source}"] = sum(sources[key] == source for key in kept)
    return EvalSet({k: texts[k] for k in kept}, kept, {k: sources[k] for k in kept})


def _last_order_set(users: Sequence[SequenceUser], products: Sequence[Product], form: str, split: str) -> EvalSet:
    """One query per (user, aisle of their last order), keyed "<user>/<text>"; relevant: the order's products
    in that aisle (grade 1)."""
    queries = sequence_queries(users, products, form)
    if not queries:
        raise TrainingError(
            f"the {split} users ({len(users)}) have no last-order product with an aisle; raise the "
            f"[personalization] {split} share or check the order lines"
        )
    keys = [f"{q.user_id}/{q.text}" for q in queries]
    return EvalSet(
        {key: q.text for key, q in zip(keys, queries)},
        {key: dict.fromkeys(sorted(q.targets), 1) for key, q in zip(keys, queries)},
        dict.fromkeys(keys, "generated"),
    )


def _most_bought(pairs: Sequence[TrainingPair], bought: Counter[tuple[str, str]], cap: int) -> list[TrainingPair]:
    """The `cap` pairs of each query whose products were bought most (ties: product id)."""
    groups: dict[str, list[TrainingPair]] = defaultdict(list)
    for pair in pairs:
        groups[pair.query].append(pair)
    return [
        pair
        for query in sorted(groups)
        for pair in sorted(groups[query], key=lambda p: (-bought[(query, p.positive_id)], p.positive_id))[:cap]
    ]


def _cap_per_query(pairs: Sequence[TrainingPair], cap: int, seed: int) -> list[TrainingPair]:
    groups: dict[str, list[TrainingPair]] = defaultdict(list)
    for pair in pairs:
        groups[query_key(pair.query)].append(pair)
    kept = []
    for key in sorted(groups):
        group = groups[key]
        kept += group if len(group) <= cap else keyed_rng(seed, "cap", key).sample(group, cap)
    return sorted(kept, key=lambda p: (query_key(p.query), p.positive_id))
