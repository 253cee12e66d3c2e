"""Build the configured negative sampler together with what it searches, by sampler name (`FACTORIES`).

- `random`: nothing to search (in-batch negatives only).
- `taxonomy`: the catalog's taxonomy, or an induced one (`DataConfig.taxonomy`).
- `bm25`: the training catalog is ingested (once; reused by alias) into OpenSearch under
  `train-<data>-<fingerprint of the product ids>`, and every training query's top BM25 hits are fetched
  with `_msearch` before training.
- `ance`: the model's own top hits from an exact in-memory index (`retrieval.ExactIndex`; fine for catalogs
  up to ~20k products), mined first with the base model and re-mined every `remine_every` steps.

Example:
    >>> hits = MinedHits()
    >>> hits.update({"kite": ["p3", "p1"]})
    >>> hits("kite", 1)
    ['p3']
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tbhns_opensearch.catalog import Product
from tbhns_opensearch.cluster.connection import msearch_item
from tbhns_opensearch.config import OpenSearchConfig
from tbhns_opensearch.errors import TrainingError
from tbhns_opensearch.query.builders import build_bm25
from tbhns_opensearch.taxonomy import Taxonomy
from tbhns_opensearch.training.config import TrainConfig
from tbhns_opensearch.training.data import TrainingData, build_taxonomy
from tbhns_opensearch.training.negatives import FalseNegativeFilter, NegativeSampler, get_sampler
from tbhns_opensearch.training.retrieval import ExactIndex, encode_texts, product_index

if TYPE_CHECKING:
    from opensearchpy import OpenSearch
    from sentence_transformers import SentenceTransformer

MSEARCH_CHUNK = 100  # queries per _msearch request


class MinedHits:
    """Ranked product ids per query text, filled in bulk; a `RetrievalSampler` calls it as its `search`."""

    def __init__(self) -> None:
        self.hits: dict[str, list[str]] = {}

    def update(self, hits: Mapping[str, list[str]] | Iterable[tuple[str, list[str]]]) -> None:
        self.hits.update(hits)

    def __call__(self, query: str, k: int) -> list[str]:
        if query not in self.hits:
            raise TrainingError(f"no mined hits for query {query!r}; mine every training query before sampling")
        return self.hits[query][:k]

    def state_dict(self) -> dict[str, Any]:
        """The hits as JSON values, for a checkpoint (ANCE's hits come from the weights they were mined with)."""
        return {"hits": self.hits}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replace the hits with a checkpoint's (`state_dict`)."""
        self.hits = {query: list(ids) for query, ids in state["hits"].items()}


@dataclass(frozen=True)
class SamplerContext:
    """What the sampler factories may use.

    Args:
        config: The run's config.
        data: Catalog and training pairs.
        model: The model being trained (the base model before step 1).
        base_vectors: (n_products, dim) base-model unit vectors, aligned with `data.products`.
        false_negatives: The filter every sampler applies.
        opensearch: The cluster for `bm25` (None: OPENSEARCH_URL).
    """

    config: TrainConfig
    data: TrainingData
    model: SentenceTransformer
    base_vectors: np.ndarray
    false_negatives: FalseNegativeFilter
    opensearch: OpenSearchConfig | None = None


@dataclass(frozen=True)
class SamplerSetup:
    """A ready sampler; `remine` (ANCE) refreshes its hits from the current model, `hits` (ANCE) are those hits,
    which a checkpoint keeps; `taxonomy` when it uses one."""

    sampler: NegativeSampler
    remine: Callable[[SentenceTransformer], None] | None = None
    taxonomy: Taxonomy | None = None
    hits: MinedHits | None = None


def build_sampler(context: SamplerContext) -> SamplerSetup:
    """The sampler named by `context.config.sampler.name`, wired to its search."""
    return FACTORIES[context.config.sampler.name](context)


def training_alias(name: str, products: Sequence[Product]) -> str:
    """The OpenSearch alias of a training catalog: `train-<name>-<8 hex of the sorted product ids>`.

    Example:
        >>> training_alias("Amazon UK toys", [Product("a", "A")])
        'train-amazon-uk-toys-ca234c55'
    """
    digest = hashlib.blake2b("\n".join(sorted(p.id for p in products)).encode(), digest_size=4).hexdigest()
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return f"train-{slug}-{digest}"


def ensure_catalog_index(
    client: OpenSearch, products: Sequence[Product], alias: str, encoder_name: str, device: str
) -> None:
    """Ingest `products` behind `alias` unless it already holds exactly that many documents."""
    from tbhns_opensearch.encoder import Encoder
    from tbhns_opensearch.index.ingest import IngestConfig, ingest_products
    from tbhns_opensearch.index.templates import IndexConfig, alias_targets

    targets = alias_targets(client, alias)
    if targets and client.count(index=alias)["count"] == len(products):
        return
    encoder = Encoder(encoder_name, device=device)
    ingest_products(
        client, products, encoder, IndexConfig(alias=alias), IngestConfig(rebuild=bool(targets), progress=False)
    )


def bm25_hits(client: OpenSearch, alias: str, queries: Sequence[str], depth: int) -> dict[str, list[tuple[str, float]]]:
    """The top `depth` BM25 (product id, score) for every query, best first, fetched with `_msearch` in chunks.

    Example:
        >>> bm25_hits(client, "train-icecat-1a2b3c4d", ["usb cable"], 10)  # doctest: +SKIP
        {'usb cable': [('3145', 9.7), ('771', 8.2), ...]}
    """
    from opensearchpy.exceptions import TransportError

    hits: dict[str, list[tuple[str, float]]] = {}
    for start in range(0, len(queries), MSEARCH_CHUNK):
        chunk = queries[start : start + MSEARCH_CHUNK]
        body: list[dict[str, object]] = []
        for query in chunk:
            body += [{"index": alias}, {**build_bm25(query, depth), "_source": False}]
        try:
            responses = client.msearch(body=body)["responses"]
        except TransportError as exc:
            raise TrainingError(
                f"BM25 mining on {alias} failed ({exc.status_code}): {exc.error}; is the alias "
                "ingested and the cluster up?"
            ) from exc
        for query, response in zip(chunk, responses):
            try:
                ranked = msearch_item(response)["hits"]["hits"]
            except TransportError as exc:
                raise TrainingError(
                    f"BM25 search for {query!r} on {alias} failed ({exc.status_code}): {exc.error}; "
                    "is the alias ingested?"
                ) from exc
            hits[query] = [(hit["_id"], hit["_score"]) for hit in ranked]
    return hits


def train_queries(data: TrainingData) -> list[str]:
    """Every training query text once, sorted."""
    return sorted({pair.query for pair in data.train_pairs})


def training_catalog(context: SamplerContext) -> tuple[OpenSearch, str]:
    """A client and the alias of the training catalog on OpenSearch, ingested first unless it is already
    there (`[sampler] alias`, else `training_alias`)."""
    from tbhns_opensearch.cluster import make_client

    opensearch = context.opensearch or OpenSearchConfig.from_env()
    if not opensearch.url:
        raise TrainingError(
            "BM25 mining needs OpenSearch: set OPENSEARCH_URL or start a node with "
            "`tbhns opensearch start` (the CLI uses the local node)"
        )
    client = make_client(opensearch)
    data = context.data
    alias = context.config.sampler.alias or training_alias(data.name, data.products)
    ensure_catalog_index(client, data.products, alias, context.config.base_model, context.config.device)
    return client, alias


def _random(context: SamplerContext) -> SamplerSetup:
    return SamplerSetup(get_sampler("random"))


def _taxonomy(context: SamplerContext) -> SamplerSetup:
    config = context.config
    taxonomy = build_taxonomy(config.data, context.data.products, context.base_vectors, config.seed)
    counts = {"leaf": config.sampler.leaf, "sibling": config.sampler.sibling, "cousin": config.sampler.cousin}
    sampler = get_sampler("taxonomy", taxonomy=taxonomy, false_negatives=context.false_negatives, **counts)
    return SamplerSetup(sampler, taxonomy=taxonomy)


def _bm25(context: SamplerContext) -> SamplerSetup:
    client, alias = training_catalog(context)
    sampler_config = context.config.sampler
    hits = MinedHits()
    scored = bm25_hits(client, alias, train_queries(context.data), sampler_config.depth)
    hits.update((query, [pid for pid, _ in ranked]) for query, ranked in scored.items())
    sampler = get_sampler(
        "bm25",
        search=hits,
        false_negatives=context.false_negatives,
        count=sampler_config.count,
        depth=sampler_config.depth,
    )
    return SamplerSetup(sampler)


def _ance(context: SamplerContext) -> SamplerSetup:
    sampler_config, products = context.config.sampler, context.data.products
    queries = train_queries(context.data)
    hits = MinedHits()

    def mine(model: SentenceTransformer, index: ExactIndex) -> None:
        hits.update(zip(queries, index.search(encode_texts(model, queries), sampler_config.depth)))

    mine(context.model, ExactIndex(tuple(p.id for p in products), context.base_vectors))
    sampler = get_sampler(
        "ance",
        search=hits,
        false_negatives=context.false_negatives,
        count=sampler_config.count,
        depth=sampler_config.depth,
    )
    return SamplerSetup(sampler, remine=lambda model: mine(model, product_index(model, products)), hits=hits)


FACTORIES: dict[str, Callable[[SamplerContext], SamplerSetup]] = {
    "random": _random,
    "taxonomy": _taxonomy,
    "bm25": _bm25,
    "ance": _ance,
}
