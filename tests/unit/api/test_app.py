"""The HTTP app without a cluster: input validation (422), 503 on a closed port, no leaks; lazy clients."""

import logging
import socket

import pytest
from anyio import to_thread
from fastapi.testclient import TestClient

from tbhns_opensearch.api import ServeSettings, create_app
from tbhns_opensearch.config import OpenSearchConfig
from tbhns_opensearch.errors import SearchError
from tbhns_opensearch.query import SearchClient

SECRET = "s3cr3t-pw"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def app_client() -> TestClient:
    config = OpenSearchConfig(url=f"http://admin:{SECRET}@127.0.0.1:{_closed_port()}", timeout_s=2)
    return TestClient(create_app(ServeSettings(config, warm=False)))


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"query": "kite", "k": 101}, "k", "less than or equal to 100"),
        ({"query": "kite", "k": 0}, "k", "greater than or equal to 1"),
        ({"query": "kite", "mode": "fuzzy"}, "mode", "'bm25', 'semantic', 'personalized' or 'hybrid'"),
        ({"query": "kite", "filter": "colour=red"}, "filter", "valid names are ['category', 'price', 'brand', 'attr']"),
        ({"query": "kite", "filter": "price=cheap"}, "filter", "must be MIN..MAX"),
        ({"query": "kite", "filter": "price=1e39.."}, "filter", "within ±3.4e+38"),
        ({"query": "x" * 10_000}, "query", "at most 1000 characters"),
        ({"query": "   "}, "query", "query is blank"),
        ({}, "query", "Field required"),
        ({"query": "kite", "offset": -1}, "offset", "greater than or equal to 0"),
        ({"query": "kite", "path": "edge"}, "path", "'auto', 'server' or 'client'"),
    ],
)
def test_get_search_validates_input(app_client: TestClient, params: dict, field: str, message: str) -> None:
    response = app_client.get("/search", params=params)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid request"
    assert any(detail["field"] == field and message in detail["message"] for detail in body["details"]), body


def test_post_search_validates_the_body(app_client: TestClient) -> None:
    response = app_client.post("/search", json={"query": "kite", "k": "many", "surprise": True})
    assert response.status_code == 422
    assert {detail["field"] for detail in response.json()["details"]} == {"k", "surprise"}


@pytest.mark.parametrize("field", ["k", "offset"])
def test_a_boolean_is_no_integer(app_client: TestClient, field: str) -> None:
    response = app_client.post("/search", json={"query": "kite", field: True})
    assert response.status_code == 422, response.text
    assert response.json()["details"] == [{"field": field, "message": "must be an integer, got the boolean True"}]


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_the_limit_is_refused_with_413_before_it_is_parsed(app_client: TestClient, chunked: bool) -> None:
    body = b'{"query": "kite", "pad": "' + b"x" * (2 * 2**20) + b'"}'
    response = app_client.post(
        "/search",
        content=iter([body[:4096], body[4096:]]) if chunked else body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413, response.text[:200]
    assert response.json() == {"error": "the request body exceeds 1 MiB; send a smaller one"}


def test_the_embedding_endpoint_takes_a_larger_body(app_client: TestClient) -> None:
    response = app_client.post("/embed", json={"input": ["word " * 3000] * 150})  # 2.3 MB: texts of one batch
    assert response.status_code == 404  # parsed, then refused because the endpoint is off (no token)


def test_closed_port_gives_503_without_traceback_or_credentials(app_client: TestClient, caplog) -> None:
    with caplog.at_level(logging.DEBUG):
        search = app_client.post("/search", json={"query": "kite", "mode": "bm25"})
        health = app_client.get("/health")
    assert search.status_code == 503 and search.headers["retry-after"] == "5"
    assert search.json() == {"error": "the search cluster is unavailable; try again later"}
    assert health.status_code == 503 and health.json()["cluster"] == {"reachable": False}
    for text in (search.text, health.text, caplog.text):
        assert SECRET not in text
        assert "Traceback" not in text
    assert not any(record.exc_info for record in caplog.records)
    assert "cannot reach the cluster at 127.0.0.1" in caplog.text


def test_openapi_documents_the_endpoints(app_client: TestClient) -> None:
    spec = app_client.get("/openapi.json").json()
    assert {"/search", "/health"} <= set(spec["paths"])
    assert set(spec["paths"]["/search"]) == {"get", "post"}
    for method in ("get", "post"):
        responses = spec["paths"]["/search"][method]["responses"]
        assert {"200", "422", "500", "502", "503"} <= set(responses)
        assert responses["422"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    assert set(spec["components"]["schemas"]["ErrorBody"]["properties"]) == {"error", "details"}
    assert app_client.get("/docs").status_code == 200


def test_search_client_connects_lazily() -> None:
    client = SearchClient(OpenSearchConfig(url=f"http://127.0.0.1:{_closed_port()}"), encoder="/no/such/model")
    assert "client" not in client.__dict__ and not client.query_encoder.loaded


def test_the_worker_serves_threads_searches_at_once_each_on_a_pooled_connection() -> None:
    settings = ServeSettings(OpenSearchConfig(url=f"http://127.0.0.1:{_closed_port()}"), warm=False, threads=24)
    with TestClient(create_app(settings)) as client:
        assert client.portal.call(lambda: to_thread.current_default_thread_limiter().total_tokens) == 24
    assert settings.search_client().client.transport.get_connection().pool.pool.maxsize == 24


def test_user_ttl_reaches_every_search_client_of_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    from tbhns_opensearch.cli import search as search_cli

    monkeypatch.setenv("OPENSEARCH_URL", f"http://127.0.0.1:{_closed_port()}")
    options = {
        "alias": "products",
        "users_index": "users",
        "encoder": "all-MiniLM-L6-v2",
        "backend": None,
        "fusion": "minmax",
        "bm25_weight": None,
        "hybrid_path": "auto",
        "hybrid_depth": None,
        "alpha": 0.3,
        "min_history": 3,
        "model_id": None,
        "port": 9200,
    }
    assert search_cli._serve_settings(**options, user_ttl_s=None).search_client().user_ttl_s == 60.0
    settings = search_cli._serve_settings(**options, user_ttl_s=0.0)
    assert [settings.search_client(system).user_ttl_s for system in settings.all_systems] == [0.0]


def test_cli_choices_match_the_registries() -> None:
    import click

    from tbhns_opensearch.api.users import USER_LISTS
    from tbhns_opensearch.cli import cli
    from tbhns_opensearch.encoder import CHOICES
    from tbhns_opensearch.query import MODES
    from tbhns_opensearch.query.fusion import FUSIONS, HYBRID_PATHS

    choices = {
        param.name: list(param.type.choices)
        for param in cli.commands["search"].params
        if hasattr(param.type, "choices")
    }
    assert choices == {
        "mode": list(MODES),
        "backend": list(CHOICES),
        "fusion": list(FUSIONS),
        "hybrid_path": list(HYBRID_PATHS),
    }
    serve = cli.commands["serve"]
    user_list = next(param for param in serve.params if param.name == "user_list")
    default = user_list.get_default(click.Context(serve))  # defaults are read from their dataclass when needed
    assert (list(user_list.type.choices), default, user_list.flag_value) == (list(USER_LISTS), "off", "ids")


def test_an_empty_filter_means_no_filter() -> None:
    from tbhns_opensearch.api.app import SearchParams

    assert SearchParams(query="kite", filter=["", "  ", "brand=X"]).filter == ["brand=X"]


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"query": "kite", "column": "bm25:nobody"}, "column", "names no system of this server (default)"),
        ({"query": "kite", "column": ["bm25"] * 5}, "column", "at most 4 items"),
        ({"query": "kite", "column": "fuzzy:default"}, "column", "mode 'fuzzy' is unknown"),
        ({"query": "kite"}, "column", "Field required"),
        ({"query": "kite", "column": "bm25", "filter": "price=nan.."}, "filter", "price"),
        ({"query": "kite", "column": "bm25", "k": 51}, "k", "less than or equal to 50"),
    ],
)
def test_compare_validates_input(app_client: TestClient, params: dict, field: str, message: str) -> None:
    response = app_client.get("/compare", params=params)
    assert response.status_code == 422, response.text
    assert any(detail["field"] == field and message in detail["message"] for detail in response.json()["details"])


def test_the_page_and_its_files_are_served_without_external_resources(app_client: TestClient) -> None:
    page = app_client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for asset in ("/page/page.js", "/page/page.css"):
        assert app_client.get(asset).status_code == 200
    for text in (page.text, app_client.get("/page/page.js").text, app_client.get("/page/page.css").text):
        assert "http://" not in text and "https://" not in text  # no CDN, no web fonts: it runs offline


def test_compare_options_list_no_users_unless_asked_and_never_read_the_cluster_for_them(app_client: TestClient) -> None:
    response = app_client.get("/compare/options")  # the cluster's port is closed: nothing was asked of it
    assert response.status_code == 200, response.text
    assert (response.json()["users"], response.json()["user_list"]) == ([], "off")


@pytest.mark.parametrize("user_list", ["ids", "masked"])
def test_compare_options_with_a_user_list_on_a_closed_port_is_503(user_list: str) -> None:
    config = OpenSearchConfig(url=f"http://127.0.0.1:{_closed_port()}", timeout_s=2)
    response = TestClient(create_app(ServeSettings(config, warm=False, user_list=user_list))).get("/compare/options")
    assert response.status_code == 503
    assert response.json() == {"error": "the search cluster is unavailable; try again later"}


def test_an_unknown_user_list_is_refused_with_the_choices() -> None:
    with pytest.raises(SearchError, match="user_list 'all' is unknown; choose one of off, ids, masked"):
        ServeSettings(OpenSearchConfig(url="http://127.0.0.1:9200"), user_list="all")


def test_embed_needs_the_token_and_returns_the_encoder_vectors(caplog) -> None:
    import numpy as np

    from tbhns_opensearch.encoder import Encoder

    encoder = Encoder()
    config = OpenSearchConfig(url=f"http://127.0.0.1:{_closed_port()}", timeout_s=2)
    settings = ServeSettings(config, warm=False, embed_token="t0ken-42")
    app = TestClient(create_app(settings, search_client=SearchClient(config, encoder=encoder)))
    texts = ["cordless drill", "garden hose 50 ft"]
    with caplog.at_level(logging.DEBUG):
        missing = app.post("/embed", json={"input": texts})
        wrong = app.post("/embed", json={"input": texts}, headers={"Authorization": "Bearer nope"})
        empty = app.post("/embed", json={"input": []}, headers={"Authorization": "Bearer t0ken-42"})
        right = app.post("/embed", json={"input": texts}, headers={"Authorization": "Bearer t0ken-42"})
    assert (missing.status_code, wrong.status_code, empty.status_code, right.status_code) == (401, 401, 422, 200)
    assert np.allclose(np.asarray(right.json()), encoder.encode(texts), atol=1e-6)
    assert "t0ken-42" not in caplog.text and "cordless" not in caplog.text

    off = TestClient(create_app(ServeSettings(config, warm=False), search_client=SearchClient(config, encoder=encoder)))
    assert off.post("/embed", json={"input": texts}, headers={"Authorization": "Bearer t0ken-42"}).status_code == 404


@pytest.mark.parametrize(
    ("args", "user_list"), [([], "off"), (["--list-users"], "ids"), (["--list-users", "masked"], "masked")]
)
def test_serve_lists_users_only_with_list_users(
    monkeypatch: pytest.MonkeyPatch, args: list[str], user_list: str
) -> None:
    import uvicorn
    from click.testing import CliRunner

    import tbhns_opensearch.api
    from tbhns_opensearch.cli import cli

    served: list[ServeSettings] = []
    monkeypatch.setattr(tbhns_opensearch.api, "create_app", lambda settings: served.append(settings))
    monkeypatch.setattr(uvicorn, "run", lambda *_, **__: None)
    monkeypatch.setenv("OPENSEARCH_URL", f"http://127.0.0.1:{_closed_port()}")
    result = CliRunner().invoke(cli, ["serve", *args, "--no-warm", "--http-port", "8123"])
    assert result.exit_code == 0, result.output
    assert served[0].user_list == user_list


def test_the_user_model_is_found_when_first_needed_and_can_be_turned_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    from tbhns_opensearch.cli import search as search_cli
    from tbhns_opensearch.users.attention import USER_MODEL_DIR, UserAttention, UserAttentionConfig, save_user_model

    save_user_model(UserAttention(UserAttentionConfig(dim=4, key_dim=2, max_history=7)), tmp_path / USER_MODEL_DIR)
    monkeypatch.setenv("OPENSEARCH_URL", f"http://127.0.0.1:{_closed_port()}")
    options = {
        "alias": "products",
        "users_index": "users",
        "encoder": str(tmp_path),
        "backend": None,
        "fusion": "minmax",
        "bm25_weight": None,
        "hybrid_path": "auto",
        "hybrid_depth": None,
        "alpha": 0.3,
        "min_history": 3,
        "model_id": None,
        "port": 9200,
        "user_ttl_s": None,
    }
    client = search_cli._serve_settings(**options).search_client()
    assert "user_model" not in client.__dict__  # nothing loaded yet
    assert client.user_model is not None and client.user_model.config.max_history == 7
    assert search_cli._serve_settings(**options, user_model=False).search_client().user_model is None
    assert SearchClient(OpenSearchConfig(url="http://127.0.0.1:9"), encoder="all-MiniLM-L6-v2").user_model is None
    with pytest.raises(SearchError, match="user_model 'learned' is unknown; pass 'auto'"):
        SearchClient(OpenSearchConfig(url="http://127.0.0.1:9"), user_model="learned")  # type: ignore[arg-type]


@pytest.mark.parametrize(("cache_mb", "kept"), [(None, 845), (1, 13), (0, 0)])
def test_the_profile_cache_is_bounded_by_the_bytes_of_its_vectors(cache_mb: int | None, kept: int) -> None:
    """Profiles with a 50 x 384 history are ~50 times a plain one's size: the cache holds fewer of them, in the
    default 64 MB or the MB given; with 0 MB, none."""
    import numpy as np

    from tbhns_opensearch.users.profiles import UserHistory, UserProfile

    sized = {} if cache_mb is None else {"profile_cache_mb": cache_mb}
    client = SearchClient(OpenSearchConfig(url=f"http://127.0.0.1:{_closed_port()}"), **sized)
    history = UserHistory(tuple(f"p{i}" for i in range(50)), (1,) * 50, np.zeros((50, 384), dtype=np.float32))
    for n in range(1000):
        client.profiles.remember(
            f"u{n}", UserProfile(f"u{n}", np.zeros(384, dtype=np.float32), 50, 0.0, "real", history)
        )
    assert len(client.profiles.cache) == client.profiles.cache.maxsize // (1024 + 384 * 4 + 50 * 384 * 4) == kept
    assert (client.profiles.last("u999") is not None) == (kept > 0) and client.profiles.last("u0") is None


def test_a_read_larger_than_the_profile_cache_is_not_kept_nor_the_read_it_replaces() -> None:
    import numpy as np

    from tbhns_opensearch.users.profiles import UserHistory, UserProfile

    client = SearchClient(OpenSearchConfig(url=f"http://127.0.0.1:{_closed_port()}"), profile_cache_mb=1)
    client.profiles.remember("u", UserProfile("u", np.zeros(384, dtype=np.float32), 1, 0.0, "real"))
    assert client.profiles.last("u") is not None
    history = UserHistory(tuple(f"p{i}" for i in range(1000)), (1,) * 1000, np.zeros((1000, 384), dtype=np.float32))
    grown = UserProfile("u", np.zeros(384, dtype=np.float32), 1000, 0.0, "real", history)  # 1.5 MB of history
    assert client.profiles.remember("u", grown) is grown
    assert client.profiles.last("u") is None  # not the stale read before it


@pytest.mark.parametrize("wrong", [-1, 1.5, True, "64"])
def test_a_wrong_profile_cache_size_is_one_clear_error(wrong: object) -> None:
    with pytest.raises(SearchError, match=f"profile_cache_mb must be a whole number of MB >= 0 .*got {wrong!r}"):
        SearchClient(OpenSearchConfig(url="http://127.0.0.1:9"), profile_cache_mb=wrong)  # type: ignore[arg-type]


def test_serve_sizes_each_systems_profile_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """`tbhns serve --profile-cache-mb N` reaches the search client of every system the app compares."""
    import uvicorn
    from click.testing import CliRunner

    import tbhns_opensearch.api
    from tbhns_opensearch.cli import cli

    served: list[ServeSettings] = []
    monkeypatch.setattr(tbhns_opensearch.api, "create_app", lambda settings: served.append(settings))
    monkeypatch.setattr(uvicorn, "run", lambda *_, **__: None)
    monkeypatch.setenv("OPENSEARCH_URL", f"http://127.0.0.1:{_closed_port()}")
    args = ["serve", "--profile-cache-mb", "2", "--system", "base=products-base,all-MiniLM-L6-v2", "--no-warm"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    settings = served[0]
    assert [settings.search_client(s).profiles.cache.maxsize for s in settings.all_systems] == [2 * 2**20] * 2
