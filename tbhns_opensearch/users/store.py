"""The users index: user vectors computed from histories at ingest, read with one `get` at query time.

A user vector is stored as little-endian float32, base64 (`vector_bytes`, as products' `embedding_bytes`):
a quarter of a JSON float list's bytes, so the per-query `get` is ~0.3 ms cheaper on a 384-dim encoder.
Documents written before it (a JSON `vector`) are still read. With `PersonalizationConfig.history_size`, the
user's last products go beside it for the learned user model (`UserProfile.history`): `history_ids`,
`history_orders` and their vectors, (n, dim) float32 row-major in `history_bytes` (n x dim x 4 bytes, base64:
~100 kB for 50 x 384). Documents without them read as history None.

`ingest_users` takes the product vectors already in the product index (500 ids per request), encodes
the products it cannot find there when a catalog and an encoder are given, builds the profiles with the
personalization rules (`users.profiles`) and writes one document per user (`_id` = user id).

Example:
    >>> summary = ingest_users(client, read_history("history.csv"), UsersIngestConfig())  # doctest: +SKIP
    >>> summary.users, summary.missing_products  # doctest: +SKIP
    (120, 0)
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
from opensearchpy import NotFoundError, OpenSearch, helpers
from opensearchpy.exceptions import TransportError

from tbhns_opensearch.catalog.fields import MAX_ID_BYTES
from tbhns_opensearch.catalog.product import Product
from tbhns_opensearch.cluster.connection import msearch_item
from tbhns_opensearch.encoder import Encoder
from tbhns_opensearch.errors import IngestError, PersonalizationError
from tbhns_opensearch.index.documents import decode_vector, vector_bytes
from tbhns_opensearch.index.templates import alias_meta, load_template
from tbhns_opensearch.index.vector_space import encoder_signature, same_space, signature_in, space_id
from tbhns_opensearch.users.events import UserEvent
from tbhns_opensearch.users.profiles import PersonalizationConfig, UserHistory, UserProfile, build_user_profiles

VECTOR_CHUNK = 500
USERS_KIND = "tbhns-users"  # `_meta.kind` of every users index this module made


@dataclass(frozen=True)
class UsersIngestConfig:
    """Where user vectors come from and where they go."""

    product_alias: str = field(
        default="products",
        metadata={"help": "product alias holding the product vectors the user vectors are built from"},
    )
    users_index: str = field(
        default="users",
        metadata={"help": "index the profiles are written to (created from index_templates/users.json)"},
    )
    personalization: PersonalizationConfig = field(
        default_factory=PersonalizationConfig, metadata={"help": "event weights, half-life, history size"}
    )


@dataclass
class UsersSummary:
    """What `ingest_users` did."""

    users_index: str
    events: int = 0
    users: int = 0  # profiles written
    below_min_history: int = 0  # written, but searches for them fall back to the plain query
    histories: int = 0  # profiles written with their last products (`PersonalizationConfig.history_size`)
    rejected_users: list[str] = field(default_factory=list)  # not written: ids longer than OpenSearch holds
    missing_products: int = 0  # product ids with no vector in the index nor in the catalog given
    encoded_products: int = 0  # products encoded from the catalog because the index lacked them
    seconds: float = 0.0


def user_document(profile: UserProfile, updated: datetime) -> dict[str, Any]:
    """The users-index document of `profile` (pure); the history fields only when it has a history.

    Example:
        >>> history = UserHistory(("p7",), (1,), np.float32([[0.0, 1.0]]))
        >>> profile = UserProfile("u1", np.array([0.6, 0.8]), 3, 12.0, "real", history)
        >>> document = user_document(profile, datetime(2025, 1, 1, tzinfo=UTC))
        >>> document["history_ids"], document["history_orders"], profile_from_document(document).history == history
        (['p7'], [1], True)
    """
    history = (
        {}
        if profile.history is None
        else {
            "history_ids": list(profile.history.ids),
            "history_orders": list(profile.history.orders_before),
            "history_bytes": vector_bytes(profile.history.vectors),  # (n, dim) row-major
            "history_digest": profile.history.digest,
        }
    )
    return {
        "user_id": profile.user_id,
        "vector_bytes": vector_bytes(profile.vector),
        "dimension": int(profile.vector.shape[0]),
        "event_count": profile.event_count,
        "last_event": profile.last_event,
        "last_update": updated.isoformat(),
        "source": profile.source,
        **history,
        **({} if profile.space is None else {"encoder_space": profile.space}),
    }


class HistoryNotRead(LookupError):
    """A profile was read without its history's vectors (`profile_search(..., known=...)`), and the stored
    history is not the one known: read the profile whole (`get_user_profile`)."""


def profile_from_document(source: Mapping[str, Any], known: UserHistory | None = None) -> UserProfile:
    """The `UserProfile` stored in a users-index document (`vector_bytes`, or an older document's `vector` list);
    a `last_event` of null (a nan timestamp an older version stored) reads as nan. A document read without
    `history_bytes` takes the `known` history when its `history_digest` is known's, else raises HistoryNotRead.

    Example:
        >>> older = {"user_id": "u1", "vector": [0.6, 0.8], "event_count": 3, "last_event": 12.0, "source": "real"}
        >>> profile_from_document(older).vector.tolist() == np.float32([0.6, 0.8]).tolist()
        True
    """
    packed = source.get("vector_bytes")
    return UserProfile(
        user_id=source["user_id"],
        vector=decode_vector(packed) if packed is not None else np.asarray(source["vector"], dtype=np.float32),
        event_count=int(source["event_count"]),
        last_event=math.nan if source.get("last_event") is None else float(source["last_event"]),  # null: a nan
        # timestamp stored before histories were checked (it is informational: ranking never reads it)
        source=source["source"],
        history=_history_from_document(source, known),
        space=source.get("encoder_space"),
    )


def _history_from_document(source: Mapping[str, Any], known: UserHistory | None) -> UserHistory | None:
    """The `UserHistory` of a users-index document, or None when it has none (written without --history)."""
    if source.get("history_bytes") is None:
        if not source.get("history_ids"):
            return None
        if known is None or source.get("history_digest") != known.digest:
            raise HistoryNotRead(source["user_id"])
        return known
    ids, dim = source["history_ids"], int(source["dimension"])
    vectors = decode_vector(source["history_bytes"])  # (n * dim,)
    if vectors.size != len(ids) * dim:
        raise PersonalizationError(
            f"user {source['user_id']!r}: the stored history has {len(ids)} ids of dimension "
            f"{dim} but {vectors.size} vector values; re-run `tbhns ingest-users --history`"
        )
    return UserHistory(tuple(ids), tuple(source["history_orders"]), vectors.reshape(len(ids), dim))


def ensure_users_index(client: OpenSearch, name: str) -> bool:
    """Create the users index `name` from `index_templates/users.json` unless it exists; True if created. An
    existing index must be one `ingest_users` made (never a product index or an alias: user documents would
    overwrite products by id); it gets the template's fields it lacks (only ever added, so always safe)."""
    template = load_template("users")
    if client.indices.exists_alias(name=name):
        raise IngestError(
            f"--users-index {name} is an alias (of {', '.join(sorted(client.indices.get_alias(name=name)))}), "
            "not a users index; pass a name of its own, e.g. --users-index users"
        )
    if client.indices.exists(index=name):
        _check_users_index(client, name, template)
        try:
            client.indices.put_mapping(
                index=name,
                body={"_meta": template["mappings"]["_meta"], "properties": template["mappings"]["properties"]},
            )
        except TransportError as exc:
            raise IngestError(
                f"users index {name} does not take the users template's fields ({exc.info or exc}); "
                "write the users to a new index (--users-index) or delete this one"
            ) from exc
        return False
    try:
        client.indices.create(index=name, body=template)
    except TransportError as exc:
        if exc.error == "resource_already_exists_exception":
            return False
        raise IngestError(f"cannot create users index {name}: {exc.info or exc}") from exc
    return True


def _check_users_index(client: OpenSearch, name: str, template: dict[str, Any]) -> None:
    """Refuse an existing index that `ingest_users` did not make: marked so, or (made before the mark) with
    only the users template's fields."""
    mapping = client.indices.get_mapping(index=name)[name]["mappings"]
    fields = set(mapping.get("properties", {}))
    marked = mapping.get("_meta", {}).get("kind") == USERS_KIND
    if not marked and not ("user_id" in fields and fields <= set(template["mappings"]["properties"])):
        raise IngestError(
            f"index {name} was not made by `tbhns ingest-users` (its fields: "
            f"{', '.join(sorted(fields)[:8]) or 'none'}); writing users there would mix them with its "
            "documents: pass a users index of its own, e.g. --users-index users"
        )


def get_user_profile(client: OpenSearch, users_index: str, user_id: str) -> UserProfile | None:
    """The stored profile of `user_id` with its history (one search: the history's vectors are doc values,
    which `get` does not return), or None when the user or the index does not exist."""
    try:
        hits = client.search(index=users_index, body=profile_search(user_id))["hits"]["hits"]
    except NotFoundError:
        return None
    return profile_from_document(_document_of(hits[0])) if hits else None


def profile_search(user_id: str, known: UserHistory | None = None) -> dict[str, Any]:
    """The search body that finds `user_id`'s profile: an `msearch` item that rides beside a product search.
    It sees the users index as of its last refresh (`ingest_users` refreshes when it is done). The history's
    vectors (~100 kB for 50 x 384) are doc values, read only without a `known` history: with one, the read
    costs what a profile without a history does and `profile_from_search` reuses `known` while it is current.

    Example:
        >>> profile_search("u42")
        {'query': {'ids': {'values': ['u42']}}, 'size': 1, 'docvalue_fields': ['history_bytes']}
    """
    body: dict[str, Any] = {"query": {"ids": {"values": [user_id]}}, "size": 1}
    if known is None:
        body["docvalue_fields"] = ["history_bytes"]
    return body


def profile_from_search(response: dict[str, Any], known: UserHistory | None = None) -> UserProfile | None:
    """The profile in the `msearch` response to `profile_search`, or None when the user or the index does not
    exist; another failure raises the TransportError a search would. Read without its history's vectors, the
    profile takes `known` while its digest is current, else HistoryNotRead is raised.

    Example:
        >>> profile_from_search({"hits": {"hits": []}}) is None
        True
    """
    try:
        hits = msearch_item(response)["hits"]["hits"]
    except NotFoundError:
        return None
    return profile_from_document(_document_of(hits[0]), known) if hits else None


def _document_of(hit: Mapping[str, Any]) -> dict[str, Any]:
    """A users-index hit's `_source`, with `history_bytes` from its doc values when the search asked for them
    (an index made before they left `_source` also has them there)."""
    values = hit.get("fields", {}).get("history_bytes")
    return {**hit["_source"], "history_bytes": values[0]} if values else dict(hit["_source"])


@dataclass(frozen=True)
class StoredUser:
    """A user of the users index, as a user picker lists them."""

    user_id: str
    event_count: int


def list_users(client: OpenSearch, users_index: str, size: int = 200) -> list[StoredUser]:
    """Up to `size` users of `users_index`, most events first (then by id); [] when the index does not exist.

    Example:
        >>> list_users(client, "users", size=2)  # doctest: +SKIP
        [StoredUser(user_id='u7', event_count=41), StoredUser(user_id='u2', event_count=12)]
    """
    body = {"size": size, "_source": ["user_id", "event_count"], "sort": [{"event_count": "desc"}, {"user_id": "asc"}]}
    try:
        hits = client.search(index=users_index, body=body)["hits"]["hits"]
    except NotFoundError:
        return []
    return [StoredUser(hit["_source"]["user_id"], int(hit["_source"]["event_count"])) for hit in hits]


def fetch_product_vectors(client: OpenSearch, alias: str, product_ids: Iterable[str]) -> dict[str, np.ndarray]:
    """Product id -> stored embedding, for the ids found behind `alias`: read from the `embedding_bytes` doc
    values (the template keeps vectors out of `_source`), 500 ids per request."""
    ids = sorted(set(product_ids))
    vectors: dict[str, np.ndarray] = {}
    for start in range(0, len(ids), VECTOR_CHUNK):
        chunk = ids[start : start + VECTOR_CHUNK]
        body = {
            "size": len(chunk),
            "_source": False,
            "query": {"ids": {"values": chunk}},
            "docvalue_fields": ["embedding_bytes"],
        }
        try:
            response = client.search(index=alias, body=body)
        except TransportError as exc:
            raise IngestError(
                f"cannot read product vectors from {alias}: {exc.info or exc}; "
                "ingest the catalog first (`tbhns ingest`) or pass --alias"
            ) from exc
        for hit in response["hits"]["hits"]:
            if "embedding_bytes" in hit.get("fields", {}):
                vectors[hit["_id"]] = decode_vector(hit["fields"]["embedding_bytes"][0])
    return vectors


def write_user_profiles(client: OpenSearch, users_index: str, profiles: Iterable[UserProfile]) -> int:
    """Bulk-write profiles (overwriting by user id) and refresh; every failed document is in the IngestError.
    Every id must fit OpenSearch's (`storable_user_id`)."""
    ensure_users_index(client, users_index)
    return _bulk_profiles(client, users_index, profiles)


def _bulk_profiles(client: OpenSearch, users_index: str, profiles: Iterable[UserProfile]) -> int:
    """`write_user_profiles` into an index `ensure_users_index` has already checked."""
    updated = datetime.now(UTC)
    actions = (
        {"_index": users_index, "_id": profile.user_id, "_source": user_document(profile, updated)}
        for profile in profiles
    )
    written, failures = helpers.bulk(client, actions, raise_on_error=False, chunk_size=500)
    if failures:
        raise IngestError(f"{len(failures)} user profiles were not written to {users_index}", list(failures))
    client.indices.refresh(index=users_index)
    return int(written)


def ingest_users(
    client: OpenSearch,
    events: Iterable[UserEvent],
    config: UsersIngestConfig,
    catalog: Iterable[Product] = (),
    encoder: Encoder | None = None,
) -> UsersSummary:
    """Build and store the profile of every user in `events`.

    Args:
        client: Cluster client.
        events: User events (real or simulated).
        config: Product alias, users index, personalization rules (`history_size`: last products stored per user).
        catalog: Products to encode when their vector is not in the product index (needs `encoder`).
        encoder: The encoder the product index was built with.
    """
    started = time.perf_counter()
    ensure_users_index(client, config.users_index)  # a wrong index is refused before any work
    events = list(events)
    wanted = {event.product_id for event in events}
    signature = signature_in(alias_meta(client, config.product_alias))  # the space of the vectors read
    vectors = fetch_product_vectors(client, config.product_alias, wanted)
    missing = wanted - vectors.keys()
    to_encode = [product for product in catalog if product.id in missing] if encoder is not None else []
    if to_encode:
        _check_space(encoder, signature, config.product_alias)
        encoded = encoder.encode([product.text_for_embedding() for product in to_encode])  # (n, dim)
        vectors.update({product.id: vector for product, vector in zip(to_encode, encoded)})
    rejected = sorted({event.user_id for event in events if not storable_user_id(event.user_id)})
    profiles = build_user_profiles(
        [event for event in events if storable_user_id(event.user_id)], vectors, config.personalization
    )
    space = space_id(signature)
    profiles = {user_id: replace(profile, space=space) for user_id, profile in profiles.items()}
    written = _bulk_profiles(client, config.users_index, profiles.values())  # the index was checked first
    min_history = config.personalization.min_history
    return UsersSummary(
        users_index=config.users_index,
        events=len(events),
        users=written,
        below_min_history=sum(profile.event_count < min_history for profile in profiles.values()),
        histories=sum(profile.history is not None for profile in profiles.values()),
        missing_products=len(missing) - len(to_encode),
        encoded_products=len(to_encode),
        rejected_users=rejected,
        seconds=time.perf_counter() - started,
    )


def _check_space(encoder: Encoder, signature: str | None, alias: str) -> None:
    """Refuse to encode the products `alias` lacks with an encoder of another space than its vectors'."""
    if signature is not None and not same_space(encoder_signature(encoder), signature):
        raise IngestError(
            f"the encoder {encoder.name_or_path!r} is another model than the one that made the vectors of "
            f"{alias}; pass the encoder the product index was built with (--encoder), so the products it lacks "
            "are encoded in the same space"
        )


def storable_user_id(user_id: str) -> bool:
    """Whether OpenSearch takes `user_id` as a document id (at most 512 UTF-8 bytes).

    Example:
        >>> storable_user_id("ann@example.com"), storable_user_id("x" * 513)
        (True, False)
    """
    return len(user_id.encode("utf-8", "surrogatepass")) <= MAX_ID_BYTES
