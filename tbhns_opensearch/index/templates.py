"""Render and apply the composable index templates in `index_templates/`, and manage the product alias.

A product index is written as `<alias>-<timestamp>` behind the alias, so a rebuild fills a fresh index and
swaps the alias atomically, with no downtime.
"""

from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import TransportError

from tbhns_opensearch.cluster.connection import knn_engine_gap
from tbhns_opensearch.errors import TemplateError

TEMPLATE_DIR = Path(
    os.environ.get("TBHNS_TEMPLATE_DIR", str(resources.files("tbhns_opensearch.resources") / "index_templates"))
)
ENGINES = {
    "lucene": ("cosinesimil", "l2", "innerproduct"),
    "faiss": ("l2", "innerproduct", "cosinesimil"),
    "nmslib": ("cosinesimil", "l2", "innerproduct", "l1", "linf"),
}
"""k-NN engines and the space types each accepts. The Maven Central k-NN zip carries only Lucene."""
UNIT_VECTOR_SPACES = ("innerproduct", "cosinesimil")
"""Space types that rank unit vectors alike; every `Encoder` writes unit vectors, so an encoder trained for
cosine serves either. Inner product is the default: Lucene's COSINE recomputes both vectors' norms at every
comparison, which was 60% of the node's CPU while it built the HNSW graph of an ingest (a Java Flight Recorder
profile), and Lucene's own documentation advises normalizing and using the dot product instead. Scores differ:
a knn hit scores 1 + cos with inner product (for cos >= 0) and (1 + cos) / 2 with cosinesimil."""


TEMPLATE_BASE_PRIORITY = 100


@dataclass(frozen=True)
class IndexConfig:
    """Where products are written and how their vectors are indexed."""

    alias: str = field(
        default="products", metadata={"help": "the name searches use; concrete indices are <alias>-<timestamp>"}
    )
    dimension: int = field(default=384, metadata={"help": "vector size; taken from the encoder at ingest"})
    engine: str = field(
        default="lucene",
        metadata={"help": "k-NN engine: lucene (in every distribution), faiss or nmslib (full distributions)"},
    )
    space_type: str = field(
        default="innerproduct",
        metadata={
            "help": "vector similarity: innerproduct, cosinesimil or l2 (nmslib also l1, linf); on the unit vectors "
            "every encoder here writes, innerproduct ranks as cosinesimil without its per-comparison norms"
        },
    )
    m: int = field(default=16, metadata={"help": "HNSW graph degree"})
    ef_construction: int = field(default=128, metadata={"help": "HNSW build-time beam width"})
    ef_search: int = field(default=100, metadata={"help": "HNSW query-time beam width"})
    shards: int = field(default=1, metadata={"help": "primary shards of a new index"})
    replicas: int = field(
        default=0, metadata={"help": "copies of each shard on other nodes (a cluster that loses a node keeps serving)"}
    )

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise TemplateError(f"unknown k-NN engine {self.engine!r}; choose one of {sorted(ENGINES)}")
        if self.space_type not in ENGINES[self.engine]:
            raise TemplateError(
                f"space type {self.space_type!r} is not supported by engine {self.engine!r}; "
                f"choose one of {ENGINES[self.engine]}"
            )
        if not self.alias or self.alias != self.alias.lower() or any(c in self.alias for c in ' ,"*\\/<>|?#'):
            raise TemplateError(f"index alias must be a lowercase OpenSearch index name, got {self.alias!r}")
        if self.dimension <= 0:
            raise TemplateError(f"vector dimension must be positive, got {self.dimension}")

    @property
    def template_name(self) -> str:
        return f"{self.alias}-template"


def load_template(name: str) -> dict[str, Any]:
    """The JSON template `index_templates/<name>.json`, without its `_comment`."""
    path = TEMPLATE_DIR / f"{name}.json"
    try:
        template = json.loads(path.read_text())
    except FileNotFoundError:
        raise TemplateError(f"no index template {path}; set TBHNS_TEMPLATE_DIR to the index_templates folder") from None
    except json.JSONDecodeError as exc:
        raise TemplateError(f"index template {path} is not valid JSON: {exc}") from exc
    template.pop("_comment", None)
    return template


def render_product_template(config: IndexConfig) -> dict[str, Any]:
    """The product template with the alias pattern, vector field and HNSW settings of `config` (pure).

    Patterns of aliases that prefix each other overlap ("shop-*" matches "shop-eu-*" indices), and OpenSearch
    refuses overlapping templates of equal priority. The priority grows with the alias length, so the
    longer, more specific alias wins for its own indices; equal-length aliases never overlap.

    Example:
        >>> [render_product_template(IndexConfig(alias=a))["priority"] for a in ("shop", "shop-eu")]
        [104, 107]
    """
    template = copy.deepcopy(load_template("products"))
    template["index_patterns"] = [f"{config.alias}-*"]
    template["priority"] = TEMPLATE_BASE_PRIORITY + len(config.alias)
    body = template["template"]
    body["settings"]["index"].update(
        {
            "number_of_shards": config.shards,
            "number_of_replicas": config.replicas,
            "knn.algo_param.ef_search": config.ef_search,
        }
    )
    body["mappings"]["properties"]["embedding"] = {
        "type": "knn_vector",
        "dimension": config.dimension,
        "method": {
            "name": "hnsw",
            "engine": config.engine,
            "space_type": config.space_type,
            "parameters": {"m": config.m, "ef_construction": config.ef_construction},
        },
    }
    return template


def put_product_template(client: OpenSearch, config: IndexConfig) -> None:
    """Create or replace the composable index template for `config.alias` (idempotent)."""
    try:
        client.indices.put_index_template(name=config.template_name, body=render_product_template(config))
    except TransportError as exc:
        raise TemplateError(f"the cluster rejected template {config.template_name}: {exc.info or exc}") from exc


def alias_targets(client: OpenSearch, alias: str) -> list[str]:
    """The indices `alias` points at, or [] when it does not exist."""
    if not client.indices.exists_alias(name=alias):
        return []
    return sorted(client.indices.get_alias(name=alias))


def alias_meta(client: OpenSearch, alias: str) -> dict[str, Any]:
    """The mapping `_meta` of the one index behind `alias`; {} when there is none, or several.

    Example:
        >>> sorted(alias_meta(client, "products"))  # doctest: +SKIP
        ['catalog_fingerprint', 'encoder_signature']
    """
    targets = alias_targets(client, alias)
    return index_meta(client, targets[0]) if len(targets) == 1 else {}


def index_meta(client: OpenSearch, index: str) -> dict[str, Any]:
    """The mapping `_meta` of the concrete index `index` ({} when it has none).

    Example:
        >>> index_meta(client, "products-20260101000000-000")["catalog_fingerprint"]  # doctest: +SKIP
        '9f2c...'
    """
    return dict(client.indices.get_mapping(index=index)[index]["mappings"].get("_meta", {}))


def create_index(client: OpenSearch, config: IndexConfig) -> str:
    """Create a fresh `<alias>-<timestamp>` index from the template and return its name; a k-NN engine the
    cluster cannot run (`knn_engine_gap`) is refused before the template or the index is written."""
    if (gap := knn_engine_gap(client, config.engine)) is not None:
        raise TemplateError(
            f"k-NN engine {config.engine!r} cannot run on this cluster: {gap}, and an index using "
            "it would crash the node's JVM (and each restart after); rerun with --engine lucene"
        )
    put_product_template(client, config)
    name = f"{config.alias}-{time.strftime('%Y%m%d%H%M%S')}-{time.monotonic_ns() % 1000:03d}"
    try:
        client.indices.create(index=name)
    except TransportError as exc:
        raise TemplateError(f"cannot create index {name}: {exc.info or exc}") from exc
    return name


def swap_alias(client: OpenSearch, alias: str, index: str, delete_previous: bool = True) -> list[str]:
    """Point `alias` at `index` alone in one atomic call; return the indices it pointed at before."""
    previous = [name for name in alias_targets(client, alias) if name != index]
    actions: list[dict[str, Any]] = [{"remove": {"index": name, "alias": alias}} for name in previous]
    actions.append({"add": {"index": index, "alias": alias, "is_write_index": True}})
    client.indices.update_aliases(body={"actions": actions})
    if delete_previous and previous:
        client.indices.delete(index=",".join(previous))
    return previous
