"""The HTTP search API: `GET/POST /search`, `/health`, OpenAPI docs at `/docs`, and the comparison page at `/`
(static files in `api/page`, backed by `GET /compare` and `GET /compare/options`; see `api.compare`). The
page lists users only when the server is told to (`ServeSettings.user_list`, `api.users`).

Bad input gets a 422 naming the field and what is allowed, a body over `MAX_BODY_BYTES` a 413 before it is
parsed; an unreachable or recovering cluster (no shard available) gets a 503 with Retry-After; a request the
cluster rejects gets a 502. Responses and logs carry no stack traces and no credentials (the cluster
URL is logged without them); the app logs one line per request with the path and status, never the query
string or query text (only its length). Serve it without the server's own access log (`tbhns serve` does).

Example:
    >>> from fastapi.testclient import TestClient
    >>> app = create_app(ServeSettings(OpenSearchConfig(url="http://127.0.0.1:9200"), warm=False))
    >>> TestClient(app).get("/search", params={"query": "kite", "k": 500}).status_code  # doctest: +SKIP
    422
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, replace
from importlib.resources import files
from typing import Annotated, Any, Literal

from anyio import to_thread
from fastapi import FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from opensearchpy.exceptions import TransportError
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tbhns_opensearch.api.compare import MAX_COLUMNS, ComparedSystem, Comparison, Judgments, compare, parse_column
from tbhns_opensearch.api.users import USER_LISTS, UserTokens, mask_user_id
from tbhns_opensearch.config import OpenSearchConfig
from tbhns_opensearch.encoder import DEFAULT_ENCODER
from tbhns_opensearch.errors import ClusterError, EncoderMismatchError, PersonalizationError, SearchError
from tbhns_opensearch.query import MODES, SearchClient, SearchResponse
from tbhns_opensearch.query.builders import parse_filters
from tbhns_opensearch.query.fusion import HYBRID_PATHS, HybridConfig
from tbhns_opensearch.query.profile_reading import PROFILE_CACHE_MB, USER_TTL_S
from tbhns_opensearch.users.profiles import PersonalizationConfig

MAX_QUERY_LENGTH = 1000  # characters accepted in `query`
MAX_K = 100
MAX_OFFSET = 1000
MAX_FILTERS = 20
MAX_USERS_LISTED = 200
MAX_EMBED_TEXTS = 256  # texts per /embed call (the ingest pipeline sends its batch_size)
MAX_EMBED_CHARS = 20_000
MAX_BODY_BYTES = 2**20  # request bodies (a search is well under 10 kB); /embed takes EMBED_BODY_BYTES
EMBED_BODY_BYTES = 8 * 2**20  # a full batch of MAX_EMBED_TEXTS texts of a few thousand characters each
RETRY_AFTER_S = 5  # what a 503 asks clients to wait: a restarted node's shards recover in seconds
UNAVAILABLE = {"error": "the search cluster is unavailable; try again later"}
FILTER_SPEC = Annotated[
    str, WithJsonSchema({"type": "string", "pattern": r"^\s*$|^\s*(category|price|brand|attr)\s*=\s*\S"})
]
"""A NAME=VALUE filter (blank: none); the schema documents the names, the validator also checks the values."""
PAGE = files("tbhns_opensearch.api").joinpath("page")


def _no_boolean(value: Any) -> Any:
    """JSON `true` is no count (pydantic's lax mode would take it as 1); strings from a query string pass on."""
    if isinstance(value, bool):
        raise ValueError(f"must be an integer, got the boolean {value}")
    return value


Count = Annotated[int, BeforeValidator(_no_boolean)]

log = logging.getLogger("tbhns.api")


class RedactedTransportLog(logging.Filter):
    """opensearch-py's request lines without what the server must not log: the traceback it attaches, and the
    URL (it carries the cluster's address, credentials and, in a users-index path, the user id).

    Example:
        >>> record = logging.LogRecord("opensearch", logging.WARNING, "", 0, "%s %s [status:%s request:%.3fs]",
        ...                            ("GET", "http://u:pw@node:9200/users/_doc/alice", 404, 0.01), None)
        >>> RedactedTransportLog().filter(record), record.getMessage()
        (True, 'GET <url withheld> [status:404 request:0.010s]')
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        if isinstance(record.args, tuple) and len(record.args) >= 2 and str(record.msg).startswith("%s %s "):
            record.args = (record.args[0], "<url withheld>", *record.args[2:])
        return True


@dataclass(frozen=True)
class ServeSettings:
    """What the HTTP app searches and how.

    Args:
        opensearch: The cluster (`OpenSearchConfig.from_env()`).
        index: Product alias.
        users_index: Users index for personalization.
        encoder: Encoder path or name (the one the product index was built with).
        backend: Encoder backend; None: onnx when the encoder directory has an export, else torch.
        hybrid: Fusion, weights, depth and server/client path.
        personalization: alpha and min_history.
        user_model: Personalize users with a stored history with the learned user model found beside each
            system's encoder (`<encoder dir>/user_model/`); False: always blend.
        user_ttl_s: Seconds a user's profile is reused before it is read again (`SearchClient`); 0: every search.
        profile_cache_mb: Memory for the last profile read of the most recent users, per system (`SearchClient`).
        warm: Load the encoder (and the user model beside it) at startup instead of on the first search.
        name: What the comparison page calls the system above (index, encoder, users index).
        systems: More systems the page can compare with it (e.g. the base encoder next to the trained one).
        judgments: Grades the page shows, by `query_key` (`api.compare.judgments_by_query`).
        model_id: The encoder deployed in the cluster (`tbhns deploy`) for this settings' own system.
        embed_token: Bearer token of `POST /embed` (the endpoint the cluster's remote model calls, `tbhns
            deploy`); None disables the endpoint.
        threads: Searches served at once (the worker's thread pool for the sync endpoints); each system's
            cluster connection pool holds at least as many connections, so none is opened per request.
        user_list: What `/compare/options` lists of the users index (`api.users.USER_LISTS`): "off" (the
            default: user ids are often e-mail addresses), "ids" (trusted networks) or "masked" labels.
    """

    opensearch: OpenSearchConfig
    alias: str = field(default="products", metadata={"help": "product alias"})
    users_index: str = field(default="users", metadata={"help": "index of user vectors"})
    encoder: str = field(default=DEFAULT_ENCODER, metadata={"help": "the product index's encoder (path or name)"})
    backend: str | None = None
    hybrid: HybridConfig = field(default_factory=HybridConfig)
    personalization: PersonalizationConfig = field(default_factory=PersonalizationConfig)
    user_model: bool = field(
        default=True,
        metadata={
            "help": "personalize users whose profile stores a history (ingest-users --history) with the learned "
            "user model in the encoder directory's user_model/ folder; off: always blend"
        },
    )
    user_ttl_s: float = field(
        default=USER_TTL_S,
        metadata={
            "help": "seconds a user's profile is reused before it is read again; 0: read on every search "
            "(in the search's own request)"
        },
    )
    profile_cache_mb: int = field(
        default=PROFILE_CACHE_MB,
        metadata={
            "help": "MB per system for the last profile read of the most recent users (a MB holds ~13 users with a "
            "50-product history, ~400 without); a user not kept is read whole before the search; 0: keep none"
        },
    )
    warm: bool = field(default=True, metadata={"help": "load the encoder at startup, not on the first search"})
    name: str = field(
        default="default",
        metadata={"help": "what the comparison page calls this system (index, encoder, users index), e.g. trained"},
    )
    systems: tuple[ComparedSystem, ...] = ()
    judgments: Judgments | None = None
    embed_token: str | None = field(default=None, repr=False)
    model_id: str | None = field(
        default=None,
        metadata={
            "help": "a model deployed in the cluster (`tbhns deploy`): semantic and hybrid searches without a "
            "user send a `neural` clause and the cluster embeds the query"
        },
    )
    threads: int = field(default=16, metadata={"help": "searches served at once; more wait in the event loop"})
    user_list: str = field(
        default="off",
        metadata={
            "help": "let the comparison page list users (any client can read the list; for trusted networks): "
            "ids, or masked labels like al***@***.com; off: no list"
        },
    )

    def __post_init__(self) -> None:
        if self.user_list not in USER_LISTS:
            raise SearchError(f"user_list {self.user_list!r} is unknown; choose one of {', '.join(USER_LISTS)}")
        names = [system.name for system in self.all_systems]
        if len(set(names)) != len(names):
            raise SearchError(f"system names must differ, got {names}")
        if self.threads < 1:
            raise SearchError(f"threads must be at least 1, got {self.threads}")

    @property
    def all_systems(self) -> tuple[ComparedSystem, ...]:
        """This settings' own system first, then `systems`."""
        return (ComparedSystem(self.name, self.alias, self.encoder, self.users_index), *self.systems)

    def search_client(self, system: ComparedSystem | None = None) -> SearchClient:
        """A (lazy) `SearchClient` for `system` (default: this settings' own) with these settings."""
        system = system or self.all_systems[0]
        opensearch = replace(self.opensearch, pool_maxsize=max(self.opensearch.pool_maxsize, self.threads))
        return SearchClient(
            opensearch,
            system.alias,
            system.encoder,
            users_index=system.users_index,
            backend=self.backend if system.name == self.name else None,
            personalization=self.personalization,
            hybrid=self.hybrid,
            user_ttl_s=self.user_ttl_s,
            profile_cache_mb=self.profile_cache_mb,
            model_id=self.model_id if system.name == self.name else None,
            user_model="auto" if self.user_model else None,
        )


class EmbedRequest(BaseModel):
    """Texts to embed: the body ML Commons' default embedding connector sends."""

    model_config = ConfigDict(extra="forbid")
    input: list[Annotated[str, Field(max_length=MAX_EMBED_CHARS)]] = Field(min_length=1, max_length=MAX_EMBED_TEXTS)


class FieldProblem(BaseModel):
    """One invalid request field and what is wrong with it."""

    field: str
    message: str


class ErrorBody(BaseModel):
    """Every error the app answers: one line, plus the invalid fields for a 422."""

    error: str
    details: list[FieldProblem] | None = None


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorBody, "description": "the request body is over 1 MiB"},
    422: {"model": ErrorBody, "description": "invalid request: `details` names each field and what to fix"},
    500: {
        "model": ErrorBody,
        "description": "the server is misconfigured (encoder and index, or users index, disagree)",
    },
    502: {"model": ErrorBody, "description": "the search cluster could not answer this search"},
    503: {
        "model": ErrorBody,
        "description": "the search cluster is unavailable or recovering; try again after the Retry-After seconds",
    },
}
EMBED_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "missing or wrong bearer token"},
    404: {"model": ErrorBody, "description": "the endpoint is off (no TBHNS_EMBED_TOKEN)"},
    413: {"model": ErrorBody, "description": "the request body is over 8 MiB"},
    422: ERROR_RESPONSES[422],
}


class QueryParams(BaseModel):
    """What every search request has: the query, a user and filters."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=MAX_QUERY_LENGTH, description="free text, never parsed as syntax")
    user_id: str | None = Field(None, min_length=1, max_length=256, description="personalize for this user")
    filter: list[FILTER_SPEC] = Field(
        default_factory=list,
        max_length=MAX_FILTERS,
        description="NAME=VALUE filters: category=A>B, price=10..50, brand=X, attr=name=value",
    )

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("query is blank; give some text to search for")
        return value

    @field_validator("filter")
    @classmethod
    def _known_filters(cls, value: list[str]) -> list[str]:
        value = [spec for spec in value if spec.strip()]  # `filter=` (empty) means no filter, as the schema allows
        try:
            parse_filters(value)
        except SearchError as exc:
            raise ValueError(str(exc)) from None
        return value


class SearchParams(QueryParams):
    """A search, as query parameters (GET) or a JSON body (POST)."""

    mode: Literal[tuple(MODES)] = Field("hybrid", description="search mode")  # type: ignore[valid-type]
    k: Count = Field(24, ge=1, le=MAX_K, description="hits per page")
    offset: Count = Field(0, ge=0, le=MAX_OFFSET, description="rank of the first hit (0-based)")
    explain: bool = Field(False, description="return each hit's raw BM25 and vector scores")
    path: Literal[HYBRID_PATHS] | None = Field(  # type: ignore[valid-type]
        None, description="hybrid: force server or client fusion"
    )


class CompareParams(QueryParams):
    """A comparison: one query through up to four MODE:SYSTEM columns."""

    column: list[str] = Field(min_length=1, max_length=MAX_COLUMNS, description="MODE:SYSTEM, e.g. hybrid:trained")
    k: Count = Field(10, ge=1, le=50, description="hits per column")

    @field_validator("column")
    @classmethod
    def _valid_columns(cls, value: list[str]) -> list[str]:
        for spec in value:
            try:
                parse_column(spec)
            except SearchError as exc:
                raise ValueError(str(exc)) from None
        return value


class BodyTooLarge(HTTPException):
    """A request body over its limit (raised while the body is read, so FastAPI never parses it)."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"the request body exceeds {limit // 2**20} MiB; send a smaller one")


class BodyLimit:
    """ASGI middleware: a body over `MAX_BODY_BYTES` (`EMBED_BODY_BYTES` for /embed) gets a 413, by its
    Content-Length before anything is read, or, when chunked, as soon as the bytes received pass the limit."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = EMBED_BODY_BYTES if scope["path"] == "/embed" else MAX_BODY_BYTES
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > limit:
            response = JSONResponse(status_code=413, content={"error": BodyTooLarge(limit).detail})
            return await response(scope, receive, send)
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited, send)


def _unavailable(exc: SearchError) -> bool:
    """Whether the cluster refused a search for want of shards (503: recovering after a restart, a red
    index) or capacity (429), which a retry a little later may pass, rather than for the search itself."""
    return isinstance(exc.__cause__, TransportError) and exc.__cause__.status_code in (429, 503)


def create_app(
    settings: ServeSettings,
    search_client: SearchClient | None = None,
    clients: Mapping[str, SearchClient] | None = None,
) -> FastAPI:
    """The ASGI app; `search_client` replaces the client of the settings' own system and `clients` those of
    named systems (tests share an encoder).

    Example:
        >>> app = create_app(ServeSettings(OpenSearchConfig(url="http://127.0.0.1:9200"), warm=False))
        >>> sorted(route.path for route in app.routes if route.path in ("/search", "/health"))
        ['/health', '/search', '/search']
    """
    client = search_client or settings.search_client()
    by_system = {
        system.name: (clients or {}).get(system.name) or settings.search_client(system) for system in settings.systems
    }
    by_system = {settings.name: client, **by_system}
    tokens = UserTokens()
    transport_log = logging.getLogger("opensearch")
    if not any(isinstance(existing, RedactedTransportLog) for existing in transport_log.filters):
        transport_log.addFilter(RedactedTransportLog())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        log.info(
            "searching %s at %s with encoder %s",
            settings.alias,
            settings.opensearch.redacted_url(),
            client.query_encoder.name,
        )
        if settings.warm:
            client.query_encoder.encode("warm up")
            log.info("user model: %s", "learned" if client.user_model is not None else "none (personalization blends)")
        to_thread.current_default_thread_limiter().total_tokens = settings.threads
        yield

    app = FastAPI(
        title="tbhns search",
        version="0.1.0",
        lifespan=lifespan,
        description="BM25, semantic, personalized and hybrid product search on OpenSearch.",
    )

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {
                "field": ".".join(str(part) for part in error["loc"][1:]) or str(error["loc"][0]),
                "message": error["msg"].removeprefix("Value error, "),
            }
            for error in exc.errors()
        ]
        return JSONResponse(status_code=422, content={"error": "invalid request", "details": details})

    @app.exception_handler(BodyTooLarge)
    async def too_large(_: Request, exc: BodyTooLarge) -> JSONResponse:
        return JSONResponse(status_code=413, content={"error": exc.detail})

    @app.exception_handler(ClusterError)
    async def unreachable(_: Request, exc: ClusterError) -> JSONResponse:
        log.warning("cluster unavailable: %s", exc)
        return JSONResponse(status_code=503, content=UNAVAILABLE, headers={"Retry-After": str(RETRY_AFTER_S)})

    @app.exception_handler(SearchError)
    async def rejected(_: Request, exc: SearchError) -> JSONResponse:
        if _unavailable(exc):
            log.warning("cluster unavailable: %s", exc)
            return JSONResponse(status_code=503, content=UNAVAILABLE, headers={"Retry-After": str(RETRY_AFTER_S)})
        log.warning("search failed: %s", exc)
        return JSONResponse(status_code=502, content={"error": "the search cluster could not answer this search"})

    @app.exception_handler(EncoderMismatchError)
    async def mismatched(_: Request, exc: EncoderMismatchError) -> JSONResponse:
        log.error("encoder and index disagree: %s", exc)
        return JSONResponse(status_code=500, content={"error": f"the server is misconfigured: {exc}"})

    @app.exception_handler(PersonalizationError)
    async def misconfigured(_: Request, exc: PersonalizationError) -> JSONResponse:
        log.error("personalization failed: %s", exc)
        return JSONResponse(status_code=500, content={"error": f"personalization is misconfigured: {exc}"})

    app.add_middleware(BodyLimit)  # inside the access log, which logs its 413s

    @app.middleware("http")
    async def access_log(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """One log line per request (path and status, never the query string); anything unexpected becomes a
        500 with one log line, so the server never sees (or logs) a traceback."""
        started = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception as exc:  # the last line of defence: every error type ends here
            log.error("unexpected %s on %s: %s", type(exc).__name__, request.url.path, exc)
            response = JSONResponse(status_code=500, content={"error": "internal error"})
        log.info(
            "%s %s %d %.1f ms",
            request.method,
            request.url.path,
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        return response

    def user_of(given: str | None) -> str | None:
        """The user a request names: a token of the masked user list mapped back (unknown: 422), else as given."""
        try:
            return None if given is None else tokens.user_id(given)
        except SearchError as exc:
            raise RequestValidationError(
                [{"loc": ("query", "user_id"), "type": "value_error", "msg": str(exc)}]
            ) from None

    def run(params: SearchParams) -> SearchResponse:
        response = client.search(
            params.query,
            user_id=user_of(params.user_id),
            mode=params.mode,
            k=params.k,
            filters=parse_filters(params.filter),
            offset=params.offset,
            explain=params.explain,
            path=params.path,
        )
        log.info(
            "search mode=%s used=%s path=%s fallback=%s personalization=%s chars=%d hits=%d took_ms=%.1f",
            params.mode,
            response.mode,
            response.path,
            response.fallback,
            response.personalization,
            len(params.query),
            len(response.hits),
            response.took_ms,
        )
        return response

    @app.get("/search", response_model=SearchResponse, responses=ERROR_RESPONSES, summary="Search (query parameters)")
    def search_get(params: Annotated[SearchParams, Query()]) -> SearchResponse:
        return run(params)

    @app.post("/search", response_model=SearchResponse, responses=ERROR_RESPONSES, summary="Search (JSON body)")
    def search_post(params: SearchParams) -> SearchResponse:
        return run(params)

    @app.post(
        "/embed",
        response_model=list[list[float]],
        responses=EMBED_RESPONSES,
        summary="Vectors of texts, for the cluster's remote model (bearer token)",
    )
    def embed(body: EmbedRequest, authorization: Annotated[str, Header()] = "") -> Any:
        if settings.embed_token is None:
            return JSONResponse(
                status_code=404,
                content={"error": "the embedding endpoint is off; start the server with TBHNS_EMBED_TOKEN set"},
            )
        if not hmac.compare_digest(authorization.encode(), f"Bearer {settings.embed_token}".encode()):
            return JSONResponse(status_code=401, content={"error": "a valid bearer token is required"})
        return client.query_encoder.encoder.encode(body.input).tolist()

    @app.get("/health", summary="Cluster and model status")
    def health() -> JSONResponse:
        model = {
            "encoder": client.query_encoder.name,
            "loaded": client.query_encoder.loaded,
            "cache": asdict(client.query_encoder.cache_info()),
        }
        try:
            cluster: dict[str, Any] = {"reachable": True, **asdict(client.health())}
        except ClusterError as exc:
            log.warning("health: %s", exc)
            return JSONResponse(
                status_code=503, content={"status": "unavailable", "cluster": {"reachable": False}, "model": model}
            )
        status = "ok" if cluster["status"] in ("green", "yellow") and cluster["index_exists"] else "degraded"
        return JSONResponse(status_code=200, content={"status": status, "cluster": cluster, "model": model})

    @app.get("/compare", response_model=Comparison, responses=ERROR_RESPONSES, summary="Compare columns for one query")
    def compare_get(params: Annotated[CompareParams, Query()]) -> Comparison:
        unknown = [spec for spec in params.column if parse_column(spec).system not in ("", *by_system)]
        if unknown:
            raise RequestValidationError(
                [
                    {
                        "loc": ("query", "column"),
                        "type": "value_error",
                        "msg": f"{unknown[0]!r} names no system of this server ({', '.join(by_system)})",
                    }
                ]
            )
        result = compare(
            params.query,
            [parse_column(spec) for spec in params.column],
            by_system,
            user_id=user_of(params.user_id),
            filters=parse_filters(params.filter),
            k=params.k,
            judgments=settings.judgments,
        ).model_copy(update={"user_id": params.user_id})
        log.info("compare columns=%d chars=%d judged=%s", len(result.columns), len(params.query), result.judged)
        return result

    def listed_users() -> list[dict[str, Any]]:
        """The users the page may offer: none, ids, or masked labels whose value is a token (`api.users`)."""
        if settings.user_list == "off":
            return []
        masked = settings.user_list == "masked"
        return [
            {
                "user_id": tokens.token(user.user_id) if masked else user.user_id,
                "label": mask_user_id(user.user_id) if masked else user.user_id,
                "event_count": user.event_count,
            }
            for user in client.users(MAX_USERS_LISTED)
        ]

    @app.get("/compare/options", summary="What the comparison page can choose from")
    def compare_options() -> dict[str, Any]:
        return {
            "systems": [
                {"name": system.name, "index": system.alias, "encoder": system.encoder}
                for system in settings.all_systems
            ],
            "modes": list(MODES),
            "max_columns": MAX_COLUMNS,
            "judged_queries": len(settings.judgments) if settings.judgments is not None else None,
            "user_list": settings.user_list,
            "users": listed_users(),
        }

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(str(PAGE.joinpath("index.html")))

    app.mount("/page", StaticFiles(directory=str(PAGE)), name="page")
    return app
