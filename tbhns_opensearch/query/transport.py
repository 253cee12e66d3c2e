"""One product alias on the cluster: searches and msearches, error translation, capabilities, mapping and pipelines.

A request may carry a `Rider`: a search of another index (a user's profile read, `query.profiles`) that goes in
the same `_msearch` as the product search, so reading the profile costs no request of its own. The rider is an
explicit argument of the request that takes it, never ambient state.

Example:
    >>> transport = ProductTransport(OpenSearchConfig(url="http://127.0.0.1:9200"), "products")  # connects to nothing
    >>> transport.alias
    'products'
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from opensearchpy import NotFoundError, OpenSearch
from opensearchpy.exceptions import ConnectionError as TransportConnectionError
from opensearchpy.exceptions import SSLError, TransportError

from tbhns_opensearch.cluster.connection import ClusterCapabilities, cluster_capabilities, make_client, msearch_item
from tbhns_opensearch.config import OpenSearchConfig
from tbhns_opensearch.errors import ClusterError, SearchError
from tbhns_opensearch.index.vector_space import signature_in, space_id
from tbhns_opensearch.query.builders import SOURCE_FIELDS, display_from_doc_values
from tbhns_opensearch.query.results import ClusterHealth, SearchHit, hit_from_fields, parse_hits

MAPPING_TTL_S = 30.0  # seconds a product index's mapping facts (`IndexFacts`) are reused before they are read again


@dataclass
class Rider:
    """A search of `index` with `body` that rides in the next product request it is given to; `response` is its
    item of that `_msearch`, once sent (None while it waits)."""

    index: str
    body: dict[str, Any]
    response: dict[str, Any] | None = None

    @property
    def waiting(self) -> bool:
        return self.response is None


@dataclass(frozen=True)
class IndexFacts:
    """What searches need from the mappings of the indices behind the alias, read at `read_at` (monotonic s).

    Args:
        dimension: Of the product vectors; None without an index, or for indices of several dimensions.
        signature: The encoder signature of the vectors (`index.vector_space`); None when unknown (no index, one
            without a signature, indices of several).
        space: `signature`'s short id, which each user profile's must match.
        display_doc_values: Every index has the display fields as doc values (pages read them there).
    """

    read_at: float
    dimension: int | None
    signature: str | None
    space: str | None
    display_doc_values: bool


def index_facts(mappings: list[dict[str, Any]]) -> IndexFacts:
    """The `IndexFacts` of the indices with these `mappings` (from `get_mapping`), read now.

    Example:
        >>> facts = index_facts([{"properties": {"embedding": {"dimension": 384}}, "_meta": {}}])
        >>> facts.dimension, facts.signature, facts.display_doc_values
        (384, None, False)
    """
    properties = [m.get("properties", {}) for m in mappings]
    dimensions = {props.get("embedding", {}).get("dimension") for props in properties}
    signatures = {signature_in(m.get("_meta", {})) for m in mappings}
    signature = signatures.pop() if len(signatures) == 1 else None

    def displays(props: dict[str, Any]) -> bool:
        return (
            {"keyword", "raw"} <= set(props.get("brand", {}).get("fields", {}))
            and "title_bytes" in props
            and "category_levels" in props
        )

    return IndexFacts(
        read_at=time.monotonic(),
        dimension=int(dimensions.pop()) if len(dimensions) == 1 and None not in dimensions else None,
        signature=signature,
        space=space_id(signature),
        display_doc_values=bool(properties) and all(displays(props) for props in properties),
    )


class ProductTransport:
    """Requests to the product alias `alias` (and riders) through one lazily made client. What the index's
    mapping says (`facts`) is read again every `MAPPING_TTL_S` seconds, so a long-running client follows the
    alias onto a rebuilt index, or onto the first one when it started before any."""

    def __init__(self, opensearch: OpenSearchConfig, alias: str) -> None:
        self.opensearch = opensearch
        self.alias = alias
        self._pipelines: set[str] = set()
        self._facts: IndexFacts | None = None

    @cached_property
    def client(self) -> OpenSearch:
        return make_client(self.opensearch)

    @cached_property
    def capabilities(self) -> ClusterCapabilities:
        with self.call("reading the cluster's plugins"):
            return cluster_capabilities(self.client)

    @property
    def facts(self) -> IndexFacts:
        """What searches need from the product index's mapping, read again once `MAPPING_TTL_S` has passed."""
        facts = self._facts
        if facts is None or time.monotonic() - facts.read_at >= MAPPING_TTL_S:
            with self.call("reading the product index mapping"):
                try:
                    mappings = self.client.indices.get_mapping(index=self.alias)
                except NotFoundError:
                    mappings = {}
            facts = self._facts = index_facts([m["mappings"] for m in mappings.values()])
        return facts

    @property
    def index_dimension(self) -> int | None:
        """The dimension of the product index's vectors, or None when the index does not exist."""
        return self.facts.dimension

    @property
    def index_signature(self) -> str | None:
        """The encoder signature of the product index's vectors (`index.vector_space`), None when unknown."""
        return self.facts.signature

    @property
    def display_doc_values(self) -> bool:
        """True when every index behind the alias has the display fields as doc values (template with
        `title_bytes`), so pages read them from doc values instead of stored fields (`page`)."""
        return self.facts.display_doc_values

    def health(self) -> ClusterHealth:
        """Cluster colour, version, server-side hybrid support and whether the alias exists."""
        with self.call("reading cluster health"):
            status = self.client.cluster.health()["status"]
            index_exists = bool(self.client.indices.exists(index=self.alias))
        return ClusterHealth(status, self.capabilities.version, self.capabilities.has_hybrid, self.alias, index_exists)

    def search(self, body: dict[str, Any], rider: Rider | None = None, **params: Any) -> dict[str, Any]:
        """The response to one search of the alias (`params`: URL parameters such as `search_pipeline`); with a
        waiting `rider`, both go in one `_msearch`."""
        with self.call(f"search on {self.alias}"):
            if rider is None or not rider.waiting:
                return self.client.search(index=self.alias, body=body, params=params or None)
            (response,) = self.msearch([{**body, **params}], rider)  # msearch takes `search_pipeline` in the body
            return msearch_item(response)

    def msearch(self, bodies: list[dict[str, Any]], rider: Rider | None = None) -> list[dict[str, Any]]:
        """The raw item responses to `bodies` on the alias in one `_msearch`, with a waiting `rider` appended (its
        item goes to `rider.response`); the caller checks each item for errors."""
        lines: list[dict[str, Any]] = [line for body in bodies for line in ({"index": self.alias}, body)]
        riding = rider if rider is not None and rider.waiting else None
        if riding is not None:
            lines += [{"index": riding.index}, riding.body]
        responses = self.client.msearch(body=lines)["responses"]
        if riding is not None:
            riding.response = responses.pop()
        return responses

    def page(
        self, body: dict[str, Any], part: str | None = None, rider: Rider | None = None, **params: Any
    ) -> list[SearchHit]:
        """The page of hits `body` asks for. Where the index has them, display fields come from doc values in the
        same request, far cheaper than a compressed stored-fields block per hit. `part` names each hit's score in
        `parts` (explain)."""
        if self.display_doc_values:
            body = display_from_doc_values(body)
        return parse_hits(self.search(body, rider, **params), part)

    def fetch(self, ranked: list[tuple[str, float]], parts: dict[str, dict[str, float]]) -> list[SearchHit]:
        """Hits for the final (id, score) page, their stored fields read with one `mget`."""
        if not ranked:
            return []
        with self.call(f"reading {len(ranked)} products from {self.alias}"):
            docs = self.client.mget(
                index=self.alias,
                body={"ids": [product_id for product_id, _ in ranked]},
                params={"stored_fields": ",".join(SOURCE_FIELDS), "_source": "false"},
            )["docs"]
        fields = {doc["_id"]: doc.get("fields", {}) for doc in docs}
        return [
            hit_from_fields(product_id, score, fields.get(product_id, {}), parts.get(product_id, {}))
            for product_id, score in ranked
        ]

    def pipeline(self, name: str, body: dict[str, Any]) -> str:
        """`name`, after making sure the cluster has search pipeline `name` with `body` (checked once a client)."""
        if name not in self._pipelines:
            with self.call(f"creating search pipeline {name}"):
                ensure_pipeline(self.client, name, body)
            self._pipelines.add(name)
        return name

    @contextmanager
    def call(self, action: str) -> Iterator[None]:
        """Turn transport errors into ClusterError (unreachable) or SearchError (the cluster said no)."""
        try:
            yield
        except TransportConnectionError as exc:
            raise ClusterError(
                f"cannot reach the cluster at {self.opensearch.redacted_url()} for {action} "
                f"({type(exc).__name__}); check OPENSEARCH_URL and that the node is running"
                + ("; for TLS, OPENSEARCH_CA_CERTS must name the cluster's CA" if isinstance(exc, SSLError) else "")
            ) from exc
        except TransportError as exc:
            hint = f"; {self.opensearch.access_hint()}" if exc.status_code in (401, 403) else ""
            raise SearchError(f"{action} failed ({exc.status_code}): {exc.error}{hint}") from exc


def ensure_pipeline(client: OpenSearch, name: str, body: dict[str, Any]) -> bool:
    """Create or update search pipeline `name` unless it already has `body`; True when it was written."""
    try:
        if client.search_pipeline.get(id=name).get(name) == body:
            return False
    except NotFoundError:
        pass
    client.search_pipeline.put(id=name, body=body)
    return True
