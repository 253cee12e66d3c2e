"""`tbhns search` on the real node reports what it measures: the encoder's load on its own line, then each
search's time with what it covers (issue #40, item 6)."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from tbhns_opensearch.cli import cli
from tests.helpers import Env, toys_search_env

pytestmark = pytest.mark.integration

MEASURED = r", measured in this process \(its first search, so also connecting and one-time reads of the index"


@pytest.fixture(scope="module")
def env(os_client, opensearch_config, encoder):  # type: ignore[no-untyped-def]
    yield from toys_search_env(os_client, opensearch_config, encoder)


def _search(env: Env, monkeypatch: pytest.MonkeyPatch, url: str, *args: str) -> tuple[str, str]:
    monkeypatch.setenv("OPENSEARCH_URL", url)
    result = CliRunner().invoke(
        cli, ["search", "toy car for a boy", "--alias", env.alias, "--users-index", env.users_index, *args]
    )
    assert result.exit_code == 0, result.output
    return result.stderr, result.stdout.strip().splitlines()[-1]


def test_cli_search_loads_the_encoder_apart_and_says_what_the_search_time_covers(
    env: Env, opensearch_config, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads, timed = _search(env, monkeypatch, opensearch_config.url, "--mode", "hybrid", "--user", "slotcar-fan")
    loaded = loads.strip().splitlines()[-1]  # after any progress bar of the model's own library
    assert re.fullmatch(r"encoder all-MiniLM-L6-v2 \((torch|onnx)\) loaded in \d+\.\d\d s", loaded), loads
    assert re.match(
        r"hybrid \((server|client) side\), blend personalization \(alpha 0\.30\), \d+\.\d ms: "
        r"query encoding \+ user profile read \+ OpenSearch requests" + MEASURED,
        timed,
    ), timed


def test_cli_bm25_search_loads_no_encoder(env: Env, opensearch_config, monkeypatch: pytest.MonkeyPatch) -> None:
    loads, timed = _search(env, monkeypatch, opensearch_config.url, "--mode", "bm25")
    assert loads == ""
    assert re.match(r"bm25, \d+\.\d ms: OpenSearch requests" + MEASURED, timed), timed
