"""`tbhns search` reports what it measures: the encoder's load apart, and what the search's time covers."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from click.testing import CliRunner

from tbhns_opensearch.api import ServeSettings
from tbhns_opensearch.cli import cli
from tbhns_opensearch.query import SearchHit, SearchResponse


@dataclass
class FakeEncoder:
    backend: str = "onnx"


@dataclass
class FakeQueryEncoder:
    calls: list[str]
    name: str = "all-MiniLM-L6-v2"
    encoder: FakeEncoder = field(default_factory=FakeEncoder)

    def encode(self, text: str) -> None:
        self.calls.append(f"encode {text}")


@dataclass
class FakeClient:
    """What `tbhns search` uses of a `SearchClient`, recording the order of its calls."""

    calls: list[str] = field(default_factory=list)
    user_model: Any = None

    def __post_init__(self) -> None:
        self.query_encoder = FakeQueryEncoder(self.calls)

    def search(self, query: str, user_id: str | None, mode: str, **_: Any) -> SearchResponse:
        self.calls.append(f"search {query}")
        hits = [SearchHit("p1", 1.5, "Wireless headphones", ("Audio", "Headphones"))]
        path = "server" if mode == "hybrid" else None
        personalization = "blend" if user_id and mode != "semantic" else None
        return SearchResponse(hits, mode, mode, 8.24, path=path, personalization=personalization, alpha=0.3)


def run_search(monkeypatch: pytest.MonkeyPatch, *args: str, user_model: Any = None) -> tuple[FakeClient, Any]:
    client = FakeClient(user_model=user_model)
    monkeypatch.setattr(ServeSettings, "search_client", lambda self: client)
    monkeypatch.setenv("OPENSEARCH_URL", "http://127.0.0.1:9")
    result = CliRunner().invoke(cli, ["search", "wireless headphones", *args])
    assert result.exit_code == 0, result.output
    return client, result


LOADED = re.compile(r"encoder all-MiniLM-L6-v2 \(onnx\) loaded in \d+\.\d\d s")
MEASURED = (
    "measured in this process (its first search, so also connecting and one-time reads of the index and cluster setup)"
)


def test_the_encoder_loads_before_the_search_on_a_line_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    client, result = run_search(monkeypatch)
    assert client.calls == ["encode warm up", "search wireless headphones"]  # the query itself is encoded timed
    assert LOADED.fullmatch(result.stderr.strip()), result.stderr
    assert result.stdout.strip().splitlines()[-1] == (
        f"hybrid (server side), 8.2 ms: query encoding + OpenSearch requests, {MEASURED}"
    )
    assert "loaded" not in result.stdout


def test_a_personalized_search_names_the_profile_read_and_loads_the_user_model_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, result = run_search(monkeypatch, "--mode", "personalized", "--user", "u1", user_model=object())
    first, second = result.stderr.strip().splitlines()
    assert LOADED.fullmatch(first) and re.fullmatch(r"user model beside all-MiniLM-L6-v2 loaded in \d+\.\d\d s", second)
    assert result.stdout.strip().splitlines()[-1] == (
        "personalized, blend personalization (alpha 0.30), 8.2 ms: query encoding + user profile read + "
        f"OpenSearch requests, {MEASURED}"
    )


@pytest.mark.parametrize(
    ("args", "covers"),
    [
        (["--mode", "bm25"], "bm25, 8.2 ms: OpenSearch requests"),
        (["--mode", "semantic", "--model-id", "m1"], "semantic, 8.2 ms: OpenSearch requests (the cluster embeds"),
    ],
)
def test_a_search_that_encodes_nothing_here_loads_no_encoder(
    monkeypatch: pytest.MonkeyPatch, args: list[str], covers: str
) -> None:
    client, result = run_search(monkeypatch, *args)
    assert client.calls == ["search wireless headphones"] and result.stderr == ""
    assert result.stdout.strip().splitlines()[-1].startswith(covers)


def test_json_is_the_response_alone_with_the_encoder_loaded_before_it_was_timed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, result = run_search(monkeypatch, "--json")
    assert client.calls == ["encode warm up", "search wireless headphones"]
    assert json.loads(result.output)["took_ms"] == 8.24  # a terminal shows stderr beside it: nothing there
