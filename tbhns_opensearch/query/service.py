"""SearchClient: validate a search, dispatch it to its mode, personalize the query vector, time the whole.

Modes, by name (`results.MODES`):
- `bm25`: `multi_match` over the product text;
- `semantic`: `knn` on the product vector;
- `personalized`: `knn` with the personalized query vector: the learned user model's (`users.attention`,
  found beside the encoder) where the user's profile stores a history, else the query blended with the user's
  vector; no user, an unknown user or fewer than `min_history` events: the `semantic` query, with
  `fallback=True` and the reason; `SearchResponse.personalization` says which ("learned" / "blend");
- `hybrid`: BM25 and the (personalized, when the user has enough history) vector together, fused on the
  server or on the client (`query.hybrid`); the response names the path.

One search walks down the query package once: `SearchClient.search` (validation, dispatch) → `profile_reading`
(the user's profile: cached, read on a thread, or riding in the page's request) → `hybrid` (hybrid pages) →
`transport` (the alias's requests, errors) → `results` (typed hits). Every request applies the same filters
(inside the knn clause for vector queries). Constructing a client connects to nothing and loads no model; the
first search does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING, Literal

import numpy as np
from opensearchpy import OpenSearch

from tbhns_opensearch.cluster.connection import ClusterCapabilities
from tbhns_opensearch.config import DEFAULT_ENCODER, OpenSearchConfig, is_count
from tbhns_opensearch.errors import EncoderMismatchError, SearchError
from tbhns_opensearch.index.vector_space import encoder_signature, same_space
from tbhns_opensearch.query.builders import Filters, build_bm25, build_knn, build_neural, clip_query_text
from tbhns_opensearch.query.encoding import QueryEncoder
from tbhns_opensearch.query.fusion import HYBRID_PATHS, HybridConfig
from tbhns_opensearch.query.hybrid import HybridSearch
from tbhns_opensearch.query.profile_reading import PROFILE_CACHE_MB, USER_TTL_S, ProfileReader
from tbhns_opensearch.query.results import MODES, ClusterHealth, SearchRequest, SearchResponse
from tbhns_opensearch.query.transport import ProductTransport, Rider
from tbhns_opensearch.users.blend import PersonalizedVector, personalize
from tbhns_opensearch.users.profiles import PersonalizationConfig, UserProfile
from tbhns_opensearch.users.store import StoredUser, list_users

if TYPE_CHECKING:  # torch is imported only when an encoder or a user model is loaded
    from tbhns_opensearch.encoder import Encoder
    from tbhns_opensearch.users.attention import QueryTimeUserModel, UserAttention

MAX_WINDOW = 10_000  # OpenSearch's default index.max_result_window: offset + k may not exceed it

Mode = Callable[[SearchRequest], SearchResponse]
PersonalizedPage = Callable[[np.ndarray, UserProfile | None, PersonalizedVector, Rider | None], SearchResponse]
"""A page for (query vector, the user's profile, the personalized vector, the profile read to ride along)."""


class SearchClient:
    """Search the product alias in any mode of `MODES`.

    Args:
        opensearch: How to reach the cluster.
        alias: Product alias.
        encoder: The encoder the product index was built with (an `Encoder`, or a path / name).
        users_index: Index of user vectors (`tbhns ingest-users`).
        backend: Encoder backend when `encoder` is a path; None: onnx when the directory has an export.
        personalization: alpha and min_history.
        hybrid: Fusion, weights, depth and the server/client path.
        cache_size: Query vectors kept in the LRU cache.
        model_id: An encoder deployed in the cluster (`tbhns deploy`): semantic and hybrid searches without a
            user send the text in a `neural` clause and the cluster embeds it. Personalized blends and
            `explain` need the query vector, so they still encode here.
        user_ttl_s: Seconds a user's stored profile (or its absence) is reused before it is read again; 0 reads
            it on every search. Profiles change only at `ingest-users` time. A read rides in the search request
            itself (`query.profile_reading`) while the last one is kept.
        profile_cache_mb: Memory for the last profile read of the most recent users (`PROFILE_CACHE_MB`: ~845
            users with a 50-product history, ~26,000 without, at 384 dimensions); a user who is not kept is read
            whole before the search can run (overlapped with encoding a new query). 0 keeps none.
        user_model: The learned user model for profiles that store a history: "auto" loads the one beside the
            encoder (`<encoder dir>/user_model/`, `users.attention.user_model_beside`) when first needed, None
            always blends, or a `UserAttention`.

    Example:
        >>> client = SearchClient(OpenSearchConfig(url="http://127.0.0.1:9200"))  # connects to nothing yet
        >>> sorted(client.modes)
        ['bm25', 'hybrid', 'personalized', 'semantic']
        >>> client.search("usb-c cable", user_id="u42", mode="hybrid", k=10)  # doctest: +SKIP
    """

    def __init__(
        self,
        opensearch: OpenSearchConfig,
        alias: str = "products",
        encoder: str | Encoder = DEFAULT_ENCODER,
        *,
        users_index: str = "users",
        backend: str | None = None,
        personalization: PersonalizationConfig | None = None,
        hybrid: HybridConfig | None = None,
        cache_size: int = 4096,
        user_ttl_s: float = USER_TTL_S,
        profile_cache_mb: int = PROFILE_CACHE_MB,
        model_id: str | None = None,
        user_model: UserAttention | Literal["auto"] | None = "auto",
    ) -> None:
        if isinstance(user_model, str) and user_model != "auto":
            raise SearchError(
                f"user_model {user_model!r} is unknown; pass 'auto' (the model beside the encoder), "
                "None (always blend) or a UserAttention"
            )
        if not is_count(profile_cache_mb):
            raise SearchError(
                f"profile_cache_mb must be a whole number of MB >= 0 (0: keep none), got {profile_cache_mb!r}"
            )
        self.opensearch = opensearch
        self.alias = alias
        self.users_index = users_index
        self.personalization = personalization or PersonalizationConfig()
        self.hybrid = hybrid or HybridConfig()
        self.model_id = model_id
        self.query_encoder = QueryEncoder(encoder, backend=backend, cache_size=cache_size)
        self.transport = ProductTransport(opensearch, alias)
        self.profiles = ProfileReader(self.transport, users_index, user_ttl_s, profile_cache_mb)
        self.hybrid_search = HybridSearch(self.transport, self.hybrid, model_id)
        self.modes: dict[str, Mode] = dict(zip(MODES, (self._bm25, self._semantic, self._personalized, self._hybrid)))
        self._user_model = user_model
        self._fits: dict[str, bool] = {}  # index signature -> the query encoder shares its space

    @cached_property
    def user_model(self) -> QueryTimeUserModel | None:
        """The learned user model at query time (loaded on first use for "auto"), or None: personalized searches
        blend."""
        if self._user_model != "auto":
            return None if self._user_model is None else self._user_model.at_query_time()
        from tbhns_opensearch.users.attention import user_model_beside

        model = user_model_beside(self.query_encoder.name)
        return None if model is None else model.at_query_time()

    @property
    def client(self) -> OpenSearch:
        """The OpenSearch client (made on first use)."""
        return self.transport.client

    @property
    def capabilities(self) -> ClusterCapabilities:
        return self.transport.capabilities

    @property
    def user_ttl_s(self) -> float:
        return self.profiles.ttl_s

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
            mode: A name in `MODES`.
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
        return self.transport.health()

    def users(self, size: int = 200) -> list[StoredUser]:
        """Up to `size` users of the users index, most events first (`users.store.list_users`)."""
        with self.transport.call(f"listing users of {self.users_index}"):
            return list_users(self.client, self.users_index, size)

    # --- modes ---------------------------------------------------------------------------------------------
    def _bm25(self, request: SearchRequest) -> SearchResponse:
        body = build_bm25(request.text, request.k, request.filters, request.offset)
        return SearchResponse(self.transport.page(body, "bm25" if request.explain else None), "bm25", "bm25", 0.0)

    def _semantic(self, request: SearchRequest, rider: Rider | None = None) -> SearchResponse:
        if self.model_id is not None and not request.explain:  # the cluster embeds the text
            body, part = build_neural(request.text, self.model_id, request.k, request.filters, request.offset), None
        else:
            body = build_knn(self._query_vector(request.text), request.k, request.filters, request.offset)
            part = "vector" if request.explain else None
        return SearchResponse(self.transport.page(body, part, rider), "semantic", "semantic", 0.0)

    def _personalized(self, request: SearchRequest) -> SearchResponse:
        def page(_: np.ndarray, profile: UserProfile | None, decision: PersonalizedVector, rider: Rider | None):
            if profile is None or decision.fallback:
                semantic = self._semantic(request, rider)
                return replace(semantic, requested_mode="personalized", fallback=True, fallback_reason=decision.reason)
            body = build_knn(decision.vector, request.k, request.filters, request.offset)  # the personalized vector
            hits = self.transport.page(body, "vector" if request.explain else None, rider)
            return SearchResponse(
                hits, "personalized", "personalized", 0.0, alpha=decision.alpha, personalization=decision.method
            )

        return self._personalize(request, page)

    def _hybrid(self, request: SearchRequest) -> SearchResponse:
        """BM25 + the query vector, personalized (learned or blend) when the request names a user with enough
        history."""
        depth = self.hybrid_search.depth_for(request.offset, request.k)
        if self.model_id is not None and request.user_id is None and not request.explain:
            return SearchResponse(
                self.hybrid_search.server(request, None, depth), "hybrid", "hybrid", 0.0, path="server"
            )

        def page(_: np.ndarray, __: UserProfile | None, decision: PersonalizedVector, rider: Rider | None):
            path = self.hybrid_search.resolve_path(request.path)
            asked = request.user_id is not None
            return SearchResponse(
                self.hybrid_search.page(path, request, decision.vector, depth, rider),
                "hybrid",
                "hybrid",
                0.0,
                fallback=asked and decision.fallback,
                fallback_reason=decision.reason if asked else None,
                path=path,
                alpha=decision.alpha,
                personalization=None if decision.fallback else decision.method,
            )

        return self._personalize(request, page)

    # --- personalization -----------------------------------------------------------------------------------
    def _personalize(self, request: SearchRequest, page: PersonalizedPage) -> SearchResponse:
        """`page` for the query vector, the user's stored profile (None without user) and the personalized
        vector (`users.blend.personalize`: learned, blend or the plain query).

        The profile comes from `profiles` (`query.profile_reading`): reused within `user_ttl_s`, read on a thread
        while the query is encoded for a user seen for the first time, else read by a rider in the page's own
        request; when the rider finds a different profile than the page ran with, `page` runs again with it.
        """
        lookup = self.profiles.lookup(request.user_id)
        query_vector = self._query_vector(request.text)

        def page_for(profile: UserProfile | None, rider: Rider | None) -> SearchResponse:
            user_model = self.user_model if profile is not None and profile.history else None  # loaded when needed
            decision = personalize(
                query_vector, request.user_id, profile, self.personalization, user_model, self.transport.facts.space
            )
            return page(query_vector, profile, decision, rider)

        profile = self.profiles.profile(lookup)
        answer = page_for(profile, lookup.rider)
        stored = self.profiles.settle(lookup)
        return answer if stored == profile else page_for(stored, None)

    def _query_vector(self, text: str) -> np.ndarray:
        """The query's vector, after checking that the index holds vectors of its dimension and space."""
        vector = self.query_encoder.encode(text)
        dimension = self.transport.index_dimension
        if dimension is not None and vector.shape[0] != dimension:
            raise EncoderMismatchError(
                f"the encoder {self.query_encoder.name!r} makes {vector.shape[0]}-dimensional vectors but "
                f"{self.alias} holds {dimension}-dimensional ones; search with the encoder the index "
                "was built with (its tbhns_manifest.json names it), or re-ingest with this one"
            )
        if not self._in_index_space():
            raise EncoderMismatchError(
                f"the encoder {self.query_encoder.name!r} is another model than the one that made the vectors "
                f"{self.alias} holds (their vectors of the same probe texts differ); search with the encoder the "
                "index was built with, or re-ingest with this one (--rebuild)"
            )
        return vector

    def _in_index_space(self) -> bool:
        """Whether the query encoder's vectors are in the product index's space (True when the index's space is
        unknown); worked out once per signature the alias has led to."""
        stored = self.transport.index_signature
        if stored is None:
            return True
        if stored not in self._fits:
            self._fits[stored] = same_space(self._encoder_signature, stored)
        return self._fits[stored]

    @cached_property
    def _encoder_signature(self) -> str:
        return encoder_signature(self.query_encoder.encoder)
