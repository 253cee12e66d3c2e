"""SearchClient: encode the query, build the request for the chosen mode, send it, parse typed results.

Modes, by name (`SearchClient.modes`):
- `bm25`: `multi_match` over the product text;
- `semantic`: `knn` on the product vector;
- `personalized`: `knn` with the personalized query vector: the learned user model's (`users.attention`,
  found beside the encoder) where the user's profile stores a history, else the query blended with the user's
  vector; no user, an unknown user or fewer than `min_history` events: the `semantic` query, with
  `fallback=True` and the reason; `SearchResponse.personalization` says which ("learned" / "blend");
- `hybrid`: BM25 and the (personalized, when the user has enough history) vector together, fused on the
  server (`hybrid` query + search pipeline, when the cluster has neural-search) or on the client (two
  queries in one `msearch`, fused by `fusion.fuse`); the response names the path.

Every request applies the same filters (inside the knn clause for vector queries). Constructing a client
connects to nothing and loads no model; the first search does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from cachetools import LRUCache
from opensearchpy import NotFoundError, OpenSearch
from opensearchpy.exceptions import ConnectionError as TransportConnectionError
from opensearchpy.exceptions import SSLError, TransportError

from tbhns_opensearch.cluster.connection import ClusterCapabilities, cluster_capabilities, make_client, msearch_item
from tbhns_opensearch.config import OpenSearchConfig
from tbhns_opensearch.encoder import DEFAULT_ENCODER, Encoder
from tbhns_opensearch.errors import ClusterError, EncoderMismatchError, SearchError
from tbhns_opensearch.index.documents import MAX_LEVELS, decode_text
from tbhns_opensearch.query.builders import (
    SOURCE_FIELDS,
    Filters,
    build_bm25,
    build_hybrid,
    build_knn,
    build_neural,
    clip_query_text,
    display_from_doc_values,
    ids_only,
)
from tbhns_opensearch.query.encoding import QueryEncoder
from tbhns_opensearch.query.fusion import HYBRID_PATHS, HybridConfig, fuse, search_pipeline
from tbhns_opensearch.users.blend import PersonalizedVector, personalize
from tbhns_opensearch.users.profiles import PersonalizationConfig, UserHistory, UserProfile
from tbhns_opensearch.users.store import (
    HistoryNotRead,
    StoredUser,
    get_user_profile,
    list_users,
    profile_from_search,
    profile_search,
)

if TYPE_CHECKING:  # torch is imported only when a user model is loaded
    from tbhns_opensearch.users.attention import UserAttention

PROFILE_READERS = 16  # profile reads in flight at once (one per concurrent search, as `serve --threads`)
USER_TTL_S = 60.0  # default seconds a user's profile read is reused (`SearchClient.user_ttl_s`)
PROFILE_CACHE_BYTES = 64 * 2**20  # the last profile read of the most recent users, by `_cached_bytes`: 26,214 users
# without a stored history (2.5 KB at 384 dimensions), 845 with 50 history products (77.5 KB)
END_OF_RESULTS = "Reached end of search result"  # neural-search's 400 for a hybrid page past the last hit
MAX_WINDOW = 10_000  # OpenSearch's default index.max_result_window: offset + k may not exceed it


@dataclass(frozen=True)
class SearchHit:
    """One ranked product; `parts` holds the raw BM25 and vector scores when `explain` was asked for
    (a part is missing when that sub-query did not retrieve the product)."""

    id: str
    score: float
    title: str
    category_path: tuple[str, ...]
    brand: str = ""
    price: float | None = None
    parts: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchResponse:
    """Ranked hits and how they were produced.

    Args:
        hits: Best first.
        mode: The mode that produced the hits ("semantic" when "personalized" fell back).
        requested_mode: The mode asked for.
        took_ms: Wall time of the whole search (encoding, user lookup, requests).
        fallback: True when the user's vector was not used although a personalized mode or a user was
            asked for; `fallback_reason` says why.
        fallback_reason: Why it fell back, else None.
        path: "server" or "client" for hybrid, else None.
        alpha: The user's weight actually applied: the blend's alpha, or the learned model's attention weight on
            the history (0.0 without personalization).
        personalization: How the user personalized the query vector: "learned" (the user model and the stored
            history) or "blend"; None when no user vector was used.
    """

    hits: list[SearchHit]
    mode: str
    requested_mode: str
    took_ms: float
    fallback: bool = False
    fallback_reason: str | None = None
    path: str | None = None
    alpha: float = 0.0
    personalization: str | None = None


@dataclass(frozen=True)
class SearchRequest:
    """A validated search; `text` is already clipped."""

    text: str
    user_id: str | None
    k: int
    filters: Filters | None
    offset: int
    explain: bool
    path: str


@dataclass(frozen=True)
class ClusterHealth:
    """What `/health` reports about the cluster."""

    status: str  # green, yellow or red
    version: str
    server_hybrid: bool  # neural-search present: hybrid runs server-side on path "auto"
    index: str
    index_exists: bool


Mode = Callable[[SearchRequest], SearchResponse]
PersonalizedPage = Callable[[np.ndarray, UserProfile | None, PersonalizedVector], SearchResponse]


@dataclass
class ProfileRide:
    """A user's profile read that rides in the next search request of its context: the product search and
    `profile_search` in one `msearch` (`SearchClient._personalize`); `response` is the users item, once sent.
    With the user's `known` history the read leaves its vectors out and reuses `known` while it is current."""

    users_index: str
    user_id: str
    known: UserHistory | None = None
    response: dict[str, Any] | None = None


_RIDE: ContextVar[ProfileRide | None] = ContextVar("tbhns_profile_ride", default=None)


class SearchClient:
    """Search the product alias in any mode of `modes`.

    Args:
        opensearch: How to reach the cluster.
        index: Product alias.
        encoder: The encoder the product index was built with (an `Encoder`, or a path / name).
        users_index: Index of user vectors (`tbhns ingest-users`).
        backend: Encoder backend when `encoder` is a path; None: onnx when the directory has an export.
        personalization: alpha and min_history.
        hybrid: Fusion, weights, depth and the server/client path.
        cache_size: Query vectors kept in the LRU cache.
        model_id: An encoder deployed in the cluster (`tbhns deploy`): semantic and hybrid searches without a
            user send the text in a `neural` clause and the cluster embeds it. Personalized blends and
            `explain` need the query vector, so they still encode here.
        user_ttl_s: Seconds a user's stored profile (or its absence) is reused before it is read again
            (the most recent users, up to `PROFILE_CACHE_BYTES`); 0 reads it on every search. Profiles change only
            at `ingest-users` time. A read rides in the search request itself (`_personalize`).
        user_model: The learned user model for profiles that store a history: "auto" loads the one beside the
            encoder (`<encoder dir>/user_model/`, `users.attention.user_model_beside`) when first needed, None
            always blends, or a `UserAttention`.

    Example:
        >>> client = SearchClient(OpenSearchConfig(url="http://127.0.0.1:9200"))  # connects to nothing yet
        >>> client.search("usb-c cable", user_id="u42", mode="hybrid", k=10)  # doctest: +SKIP
    """

    def __init__(
        self,
        opensearch: OpenSearchConfig,
        index: str = "products",
        encoder: str | Encoder = DEFAULT_ENCODER,
        *,
        users_index: str = "users",
        backend: str | None = None,
        personalization: PersonalizationConfig | None = None,
        hybrid: HybridConfig | None = None,
        cache_size: int = 4096,
        user_ttl_s: float = USER_TTL_S,
        model_id: str | None = None,
        user_model: UserAttention | Literal["auto"] | None = "auto",
    ) -> None:
        self.opensearch = opensearch
        self.index = index
        self.users_index = users_index
        self.personalization = personalization or PersonalizationConfig()
        self.hybrid = hybrid or HybridConfig()
        self.query_encoder = QueryEncoder(encoder, backend=backend, cache_size=cache_size)
        self.model_id = model_id
        self._pipelines: set[str] = set()
        self.user_ttl_s = user_ttl_s
        self._profiles: LRUCache[str, tuple[float, UserProfile | None]] = LRUCache(PROFILE_CACHE_BYTES, _cached_bytes)
        self._profiles_lock = threading.Lock()
        self._profile_reader = ThreadPoolExecutor(
            max_workers=PROFILE_READERS, thread_name_prefix="tbhns-profile"
        )  # threads start on first use
        if isinstance(user_model, str) and user_model != "auto":
            raise SearchError(
                f"user_model {user_model!r} is unknown; pass 'auto' (the model beside the encoder), "
                "None (always blend) or a UserAttention"
            )
        self._user_model = user_model

    @cached_property
    def user_model(self) -> UserAttention | None:
        """The learned user model (loaded on first use for "auto"), or None: personalized searches blend."""
        if self._user_model != "auto":
            return self._user_model
        from tbhns_opensearch.users.attention import user_model_beside

        return user_model_beside(self.query_encoder.name)

    @cached_property
    def client(self) -> OpenSearch:
        return make_client(self.opensearch)

    @cached_property
    def _index_properties(self) -> list[dict[str, Any]]:
        """The mapped properties of each index behind the product alias (read once); [] when there is none."""
        with self._cluster_call("reading the product index mapping"):
            try:
                mappings = self.client.indices.get_mapping(index=self.index)
            except NotFoundError:
                return []
        return [m["mappings"].get("properties", {}) for m in mappings.values()]

    @property
    def index_dimension(self) -> int | None:
        """The dimension of the product index's vectors, or None when the index does not exist."""
        dimensions = {props.get("embedding", {}).get("dimension") for props in self._index_properties}
        return int(dimensions.pop()) if len(dimensions) == 1 and None not in dimensions else None

    @property
    def display_doc_values(self) -> bool:
        """True when every index behind the alias has the display fields as doc values (template with
        `title_bytes`), so pages read them from doc values instead of stored fields (`_search_page`)."""

        def has(props: dict[str, Any]) -> bool:
            return (
                {"keyword", "raw"} <= set(props.get("brand", {}).get("fields", {}))
                and "title_bytes" in props
                and "category_levels" in props
            )

        return bool(self._index_properties) and all(has(props) for props in self._index_properties)

    def _query_vector(self, text: str) -> np.ndarray:
        """The query's vector, after checking that the index holds vectors of its dimension."""
        vector = self.query_encoder.encode(text)
        if self.index_dimension is not None and vector.shape[0] != self.index_dimension:
            raise EncoderMismatchError(
                f"the encoder {self.query_encoder.name!r} makes {vector.shape[0]}-dimensional vectors but "
                f"{self.index} holds {self.index_dimension}-dimensional ones; search with the encoder the index "
                "was built with (its tbhns_manifest.json names it), or re-ingest with this one"
            )
        return vector

    @cached_property
    def capabilities(self) -> ClusterCapabilities:
        with self._cluster_call("reading the cluster's plugins"):
            return cluster_capabilities(self.client)

    @property
    def modes(self) -> dict[str, Mode]:
        """Mode name -> bound method (`MODES`)."""
        return {name: method.__get__(self) for name, method in MODES.items()}

    def search(
        self,
        query: str,
        user_id: str | None = None,
        mode: str = "hybrid",
        k: int = 24,
        filters: Filters | None = None,
        offset: int = 0,
        explain: bool = False,
        path: str | None = None,
    ) -> SearchResponse:
        """The top `k` products for `query` from rank `offset` on.

        Args:
            query: Free text; clipped to `MAX_QUERY_CHARS` and never parsed as query syntax.
            user_id: Personalize with this user's stored vector (modes personalized and hybrid).
            mode: A name in `modes`.
            k: Hits per page.
            filters: Category prefix, price range, brands, attribute terms.
            offset: Rank of the first hit (0-based) for pagination.
            explain: Fill each hit's `parts` with its raw BM25 and vector scores.
            path: Hybrid only: "server", "client" or "auto"; None uses `HybridConfig.path`.
        """
        started = time.perf_counter()
        if mode not in self.modes:
            raise SearchError(f"unknown search mode {mode!r}; valid modes are {sorted(self.modes)}")
        if k < 1 or offset < 0 or offset + k > MAX_WINDOW:
            raise SearchError(f"need k >= 1, offset >= 0 and offset + k <= {MAX_WINDOW}, got k={k}, offset={offset}")
        if path is not None and path not in HYBRID_PATHS:
            raise SearchError(f"unknown hybrid path {path!r}; valid paths are {list(HYBRID_PATHS)}")
        text = clip_query_text(query)
        if not text:
            raise SearchError("the query is empty; give some text to search for")
        request = SearchRequest(text, user_id, k, filters, offset, explain, path or self.hybrid.path)
        response = self.modes[mode](request)
        return replace(response, took_ms=(time.perf_counter() - started) * 1000)

    def health(self) -> ClusterHealth:
        """Cluster colour, version, server-side hybrid support and whether the product alias exists."""
        with self._cluster_call("reading cluster health"):
            status = self.client.cluster.health()["status"]
            index_exists = bool(self.client.indices.exists(index=self.index))
        return ClusterHealth(status, self.capabilities.version, self.capabilities.has_hybrid, self.index, index_exists)

    def users(self, size: int = 200) -> list[StoredUser]:
        """Up to `size` users of the users index, most events first (`users.store.list_users`)."""
        with self._cluster_call(f"listing users of {self.users_index}"):
            return list_users(self.client, self.users_index, size)

    # --- modes ---------------------------------------------------------------------------------------------
    def _bm25(self, request: SearchRequest) -> SearchResponse:
        hits = self._search_page(
            build_bm25(request.text, request.k, request.filters, request.offset), "bm25" if request.explain else None
        )
        return SearchResponse(hits, "bm25", "bm25", 0.0)

    def _semantic(self, request: SearchRequest) -> SearchResponse:
        if self.model_id is not None and not request.explain:
            hits = self._search_page(
                build_neural(request.text, self.model_id, request.k, request.filters, request.offset)
            )
            return SearchResponse(hits, "semantic", "semantic", 0.0)
        vector = self._query_vector(request.text)
        hits = self._search_page(
            build_knn(vector, request.k, request.filters, request.offset), "vector" if request.explain else None
        )
        return SearchResponse(hits, "semantic", "semantic", 0.0)

    def _personalized(self, request: SearchRequest) -> SearchResponse:
        return self._personalize(request, partial(self._personalized_page, request))

    def _personalized_page(
        self,
        request: SearchRequest,
        query_vector: np.ndarray,
        profile: UserProfile | None,
        decision: PersonalizedVector,
    ) -> SearchResponse:
        if profile is None or decision.fallback:
            semantic = self._semantic(request)
            return replace(semantic, requested_mode="personalized", fallback=True, fallback_reason=decision.reason)
        body = build_knn(decision.vector, request.k, request.filters, request.offset)  # the personalized vector
        hits = self._search_page(body, "vector" if request.explain else None)
        return SearchResponse(
            hits, "personalized", "personalized", 0.0, alpha=decision.alpha, personalization=decision.method
        )

    def _hybrid(self, request: SearchRequest) -> SearchResponse:
        """BM25 + the query vector, personalized (learned or blend) when the request names a user with enough
        history."""
        depth = max(self.hybrid.depth, request.offset + request.k)
        if self.model_id is not None and request.user_id is None and not request.explain:
            return SearchResponse(self._server_hybrid(request, None, depth), "hybrid", "hybrid", 0.0, path="server")
        return self._personalize(request, partial(self._hybrid_page, request, depth))

    def _hybrid_page(
        self,
        request: SearchRequest,
        depth: int,
        _query_vector: np.ndarray,
        _profile: UserProfile | None,
        decision: PersonalizedVector,
    ) -> SearchResponse:
        path = self._resolve_path(request.path)
        fuse_on = {"server": self._server_hybrid, "client": self._client_hybrid}[path]
        hits = fuse_on(request, decision.vector, depth)
        asked = request.user_id is not None
        return SearchResponse(
            hits,
            "hybrid",
            "hybrid",
            0.0,
            fallback=asked and decision.fallback,
            fallback_reason=decision.reason if asked else None,
            path=path,
            alpha=decision.alpha,
            personalization=None if decision.fallback else decision.method,
        )

    # --- hybrid paths --------------------------------------------------------------------------------------
    def _server_hybrid(self, request: SearchRequest, vector: np.ndarray | None, depth: int) -> list[SearchHit]:
        """The fused page from the cluster; `vector` None: the cluster embeds the text (`model_id`)."""
        name = self._ensure_pipeline()
        body = build_hybrid(
            request.text,
            vector,
            request.k,
            depth,
            request.filters,
            request.offset,
            model_id=self.model_id if vector is None else None,
        )
        try:
            if self.display_doc_values:
                hits = self._search_page(body, search_pipeline=name)
            else:  # stored fields of all 2 x depth candidates would cost more than a second request for the page
                ranked = parse_hits(self._send(ids_only(body), search_pipeline=name))
                hits = self._page([(hit.id, hit.score) for hit in ranked], {})
        except SearchError as exc:
            if END_OF_RESULTS not in str(getattr(exc.__cause__, "info", "")):
                raise
            return []  # neural-search refuses a page past the last hit; every other path answers an empty page
        if request.explain and vector is not None:
            parts = _parts(self._sub_queries(request, vector, depth))
            hits = [replace(hit, parts=parts.get(hit.id, {})) for hit in hits]
        return hits

    def _client_hybrid(self, request: SearchRequest, vector: np.ndarray, depth: int) -> list[SearchHit]:
        """Both candidate lists, display fields included, in one msearch (the node runs the two searches side by
        side), fused here; an index without display doc values reads the page with `mget`."""
        bm25, knn = self._sub_queries(request, vector, depth, display=True)
        ranked = [[(hit.id, hit.score) for hit in hits] for hits in (bm25, knn)]
        fused = fuse(ranked, self.hybrid)[request.offset : request.offset + request.k]
        parts = _parts((bm25, knn)) if request.explain else {}
        candidates = {hit.id: hit for hit in (*knn, *bm25)}
        if self.display_doc_values:
            return [
                replace(candidates[product_id], score=score, parts=parts.get(product_id, {}))
                for product_id, score in fused
            ]
        return self._page(fused, parts)

    def _search_page(self, body: dict[str, Any], part: str | None = None, **params: Any) -> list[SearchHit]:
        """The page of hits `body` asks for. Where the index has them, display fields come from doc values in the
        same request: far cheaper than a compressed stored-fields block per hit (BM25 p50 2.2 against 3.7 ms on
        Icecat). `part` names each hit's score in `parts` (explain)."""
        if self.display_doc_values:
            body = display_from_doc_values(body)
        return parse_hits(self._send(body, **params), part)

    def _page(self, ranked: list[tuple[str, float]], parts: dict[str, dict[str, float]]) -> list[SearchHit]:
        """Hits for the final (id, score) page, their stored fields read with one `mget`."""
        if not ranked:
            return []
        with self._cluster_call(f"reading {len(ranked)} products from {self.index}"):
            docs = self.client.mget(
                index=self.index,
                body={"ids": [product_id for product_id, _ in ranked]},
                params={"stored_fields": ",".join(SOURCE_FIELDS), "_source": "false"},
            )["docs"]
        fields = {doc["_id"]: doc.get("fields", {}) for doc in docs}
        return [
            _hit(product_id, score, fields.get(product_id, {}), parts.get(product_id, {}))
            for product_id, score in ranked
        ]

    def _sub_queries(
        self, request: SearchRequest, vector: np.ndarray, depth: int, display: bool = False
    ) -> tuple[list[SearchHit], list[SearchHit]]:
        """The BM25 and knn candidate lists (top `depth` each) that hybrid fuses, in one msearch; with `display`,
        each hit's display fields from doc values where the index has them, else ids and scores only."""
        shape = display_from_doc_values if display and self.display_doc_values else ids_only
        bodies = [
            shape(build_bm25(request.text, depth, request.filters)),
            shape(build_knn(vector, depth, request.filters)),
        ]
        with self._cluster_call(f"hybrid sub-queries on {self.index}"):
            bm25, knn = (parse_hits(msearch_item(response)) for response in self._msearch(bodies))
        return bm25, knn

    def _resolve_path(self, path: str) -> str:
        capable = self.capabilities.has_rrf if self.hybrid.fusion == "rrf" else self.capabilities.has_hybrid
        if path == "auto":
            return "server" if capable else "client"
        if path == "server" and not capable:
            raise SearchError(
                f"server-side hybrid ({self.hybrid.fusion}) needs the neural-search plugin (RRF: 2.19 or later); "
                f"cluster {self.capabilities.version} has {sorted(self.capabilities.plugins)}. Use path='client'"
            )
        return path

    def _ensure_pipeline(self) -> str:
        name, body = search_pipeline(self.hybrid)
        if name not in self._pipelines:
            with self._cluster_call(f"creating search pipeline {name}"):
                ensure_pipeline(self.client, name, body)
            self._pipelines.add(name)
        return name

    # --- personalization -----------------------------------------------------------------------------------
    def _personalize(self, request: SearchRequest, page: PersonalizedPage) -> SearchResponse:
        """`page` for the query vector, the user's stored profile (None without user) and the personalized
        vector (`users.blend.personalize`: learned, blend or the plain query).

        A profile read within `user_ttl_s` is reused. A user seen for the first time is read on the reader
        thread while the query is encoded. Any other user's profile is read in the page's own search request
        (`ProfileRide`: one `msearch`; a history already held is not sent again while its digest is current),
        and the page runs with the last profile read; when the read finds a
        different profile, `page` runs again with it. Either way the answer is the stored profile's, and an
        unchanged profile (the common case) costs no request of its own.
        """
        user_id = request.user_id
        last = self._last_profile(user_id)
        fresh = user_id is None or (last is not None and time.monotonic() - last[0] < self.user_ttl_s)
        first_read = None if fresh or last is not None else self._profile_reader.submit(self._read_profile, user_id)
        query_vector = self._query_vector(request.text)

        def page_for(profile: UserProfile | None) -> SearchResponse:
            user_model = self.user_model if profile is not None and profile.history else None  # loaded when needed
            return page(
                query_vector, profile, personalize(query_vector, user_id, profile, self.personalization, user_model)
            )

        if first_read is not None:
            return page_for(first_read.result())
        if fresh:
            return page_for(last[1] if last else None)
        assert user_id is not None and last is not None
        ride = ProfileRide(self.users_index, user_id, last[1].history if last[1] is not None else None)
        token = _RIDE.set(ride)
        try:
            answer = page_for(last[1])
        finally:
            _RIDE.reset(token)
        profile = self._profile_from_ride(ride)
        return answer if profile == last[1] else page_for(profile)

    def _last_profile(self, user_id: str | None) -> tuple[float, UserProfile | None] | None:
        """(monotonic time of the read, profile or None for no such user) of the user's last read, if kept."""
        if user_id is None:
            return None
        with self._profiles_lock:
            return self._profiles.get(user_id)

    def _read_profile(self, user_id: str) -> UserProfile | None:
        with self._cluster_call(f"reading user {user_id!r} from {self.users_index}"):
            return self._remember(user_id, get_user_profile(self.client, self.users_index, user_id))

    def _profile_from_ride(self, ride: ProfileRide) -> UserProfile | None:
        """The profile the ride read; read on its own when the page sent no search for it to ride in."""
        if ride.response is None:
            return self._read_profile(ride.user_id)
        with self._cluster_call(f"reading user {ride.user_id!r} from {self.users_index}"):
            try:
                return self._remember(ride.user_id, profile_from_search(ride.response, ride.known))
            except HistoryNotRead:  # the stored history changed since it was read: read the profile whole
                pass
        return self._read_profile(ride.user_id)

    def _remember(self, user_id: str, profile: UserProfile | None) -> UserProfile | None:
        with self._profiles_lock:
            self._profiles[user_id] = (time.monotonic(), profile)
        return profile

    # --- transport -----------------------------------------------------------------------------------------
    def _send(self, body: dict[str, Any], **params: Any) -> dict[str, Any]:
        """The response to one search of the product alias (`params`: URL parameters such as `search_pipeline`);
        with a profile read waiting to ride, both go in one `msearch`."""
        ride = _RIDE.get()
        with self._cluster_call(f"search on {self.index}"):
            if ride is None or ride.response is not None:
                return self.client.search(index=self.index, body=body, params=params or None)
            (response,) = self._msearch([{**body, **params}])  # msearch takes `search_pipeline` in the body
            return msearch_item(response)

    def _msearch(self, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The raw item responses to `bodies` on the product alias in one `msearch`, with the profile read of
        this context riding along when one waits (`ProfileRide`); the caller checks each item for errors."""
        lines: list[dict[str, Any]] = [line for body in bodies for line in ({"index": self.index}, body)]
        ride = _RIDE.get()
        riding = ride if ride is not None and ride.response is None else None
        if riding is not None:
            lines += [{"index": riding.users_index}, profile_search(riding.user_id, riding.known)]
        responses = self.client.msearch(body=lines)["responses"]
        if riding is not None:
            riding.response = responses.pop()
        return responses

    @contextmanager
    def _cluster_call(self, action: str) -> Iterator[None]:
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
            hint = "; check OPENSEARCH_USER and OPENSEARCH_PASSWORD" if exc.status_code in (401, 403) else ""
            raise SearchError(f"{action} failed ({exc.status_code}): {exc.error}{hint}") from exc


MODES: dict[str, Callable[[SearchClient, SearchRequest], SearchResponse]] = {
    "bm25": SearchClient._bm25,
    "semantic": SearchClient._semantic,
    "personalized": SearchClient._personalized,
    "hybrid": SearchClient._hybrid,
}
"""The search modes by name."""


def ensure_pipeline(client: OpenSearch, name: str, body: dict[str, Any]) -> bool:
    """Create or update search pipeline `name` unless it already has `body`; True when it was written."""
    try:
        if client.search_pipeline.get(id=name).get(name) == body:
            return False
    except NotFoundError:
        pass
    client.search_pipeline.put(id=name, body=body)
    return True


def parse_hits(raw: dict[str, Any], part: str | None = None) -> list[SearchHit]:
    """Typed hits from a raw OpenSearch search response; `part` names the score in `parts` (explain)."""
    hits = []
    for hit in raw["hits"]["hits"]:
        score = float(hit["_score"] or 0.0)
        fields = hit.get("fields", {})
        product_id = hit["_id"] if "_id" in hit else fields["product_id"][0]  # ids_only: from doc values
        hits.append(_hit(product_id, score, fields, {part: score} if part else {}))
    return hits


def _hit(product_id: str, score: float, fields: dict[str, list[Any]], parts: dict[str, float]) -> SearchHit:
    """A hit from its stored fields or their doc values (`DISPLAY_DOC_VALUES`; OpenSearch returns each as a
    list, a float's doc value as the float32 widened to a double: its shortest float32 form is the value written)."""
    levels = (f"category_levels.l{level}" for level in range(MAX_LEVELS))  # read only when no stored path came
    price = (fields.get("price") or [None])[0]
    return SearchHit(
        id=product_id,
        score=score,
        title=fields["title"][0] if "title" in fields else decode_text((fields.get("title_bytes") or [""])[0]),
        category_path=tuple(fields.get("category_names") or (fields[name][0] for name in levels if name in fields)),
        brand=(fields.get("brand") or fields.get("brand.raw") or [""])[0],
        price=None if price is None else float(str(np.float32(price))),
        parts=parts,
    )


def _cached_bytes(entry: tuple[float, UserProfile | None]) -> int:
    """What a profile-cache entry costs: its vectors' bytes, plus 1 KB for the rest.

    Example:
        >>> _cached_bytes((0.0, UserProfile("u", np.zeros(384, dtype=np.float32), 3, 0.0, "real")))
        2560
    """
    profile = entry[1]
    if profile is None:
        return 1024
    return 1024 + profile.vector.nbytes + (0 if profile.history is None else profile.history.vectors.nbytes)


def _parts(sub_results: tuple[list[SearchHit], list[SearchHit]]) -> dict[str, dict[str, float]]:
    """Product id -> {"bm25": raw score, "vector": raw score}, for the products each sub-query retrieved."""
    parts: dict[str, dict[str, float]] = {}
    for name, hits in zip(("bm25", "vector"), sub_results):
        for hit in hits:
            parts.setdefault(hit.id, {})[name] = hit.score
    return parts
