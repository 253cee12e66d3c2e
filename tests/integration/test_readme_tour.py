"""The README's five-minute tour runs as written, on the real node.

The test finds the README's fenced blocks marked `<!-- tour: runs in tests/integration/test_readme_tour.py -->`
and runs every `tbhns` command in them, in order, through click's CliRunner with `OPENSEARCH_URL` set to the
test node and the repository root as the working directory: the ingest of the committed toys catalog, the
searches in every mode, the simulated users over the same catalog and the personalized searches. The one
substitution is the alias: the word `toys` in `--alias` / `--users-index` values becomes a fresh name, so
runs never share an index; everything created under it is deleted at the end. Commands that start a node or
serve (`tbhns opensearch start`, `tbhns serve`) stay out of marked blocks: the suite's node is already there,
and tests/unit/test_docs_commands.py parses them.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from tbhns_opensearch.cli import cli
from tbhns_opensearch.cluster.node import default_cache_dir
from tbhns_opensearch.config import OpenSearchConfig
from tbhns_opensearch.index.templates import IndexConfig
from tests.doc_blocks import Block, Command, block_commands, fenced_blocks
from tests.helpers import ROOT

pytestmark = pytest.mark.integration

README = ROOT / "README.md"
MARKER = "<!-- tour: runs in tests/integration/test_readme_tour.py -->"
TOUR_ALIAS = "toys"
NAMED_BY_ALIAS = ("--alias", "--users-index")


def tour_commands() -> list[Command]:
    """The `tbhns` commands of the README's marked blocks, in the README's order."""
    return [command for block in fenced_blocks(README) if block.marker == MARKER for command in block_commands(block)]


def with_alias(args: tuple[str, ...], alias: str) -> list[str]:
    """The command's arguments with the tour's alias word replaced in `--alias` and `--users-index` values."""
    out = list(args)
    for position, arg in enumerate(out[:-1]):
        if arg in NAMED_BY_ALIAS:
            out[position + 1] = re.sub(rf"\b{TOUR_ALIAS}\b", alias, out[position + 1])
    return out


def run_python(block: Block, alias: str) -> list[str]:
    """The lines a python block prints when run as written, on the tour's alias."""
    code = "\n".join(text for _, text in block.lines)
    code = re.sub(rf'"(users-)?{TOUR_ALIAS}"', lambda m: f'"{m.group(1) or ""}{alias}"', code)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, f"{block.path}:{block.lines[0][0]}", "exec"), {})
    return printed.getvalue().splitlines()


def readme_commands(name: str) -> list[Command]:
    """Every README command `tbhns NAME ...` (marked or not), in order."""
    return [command for block in fenced_blocks(README) for command in block_commands(block) if command.args[0] == name]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def with_option(args: list[str], option: str, value: str) -> list[str]:
    """`args` with `option`'s value set to `value` (added when the command leaves it to its default)."""
    if option in args:
        position = args.index(option) + 1
        return [*args[:position], value, *args[position + 1 :]]
    return [*args, option, value]


def serve_as_written(commands: list[Command], alias: str, cluster_url: str) -> dict[str, object]:
    """Run the README's `tbhns serve` (its alias renamed, on a free HTTP port) as a process of its own, ask it the
    README's search (`curl .../search?query=board+game&mode=hybrid&k=5`), then stop it."""
    (command,) = commands
    port = free_port()
    args = with_option(with_alias(command.args, alias), "--http-port", str(port))
    env = {**os.environ, "OPENSEARCH_URL": cluster_url}
    server = subprocess.Popen(  # the installed entry point, as a user runs it
        [str(Path(sys.executable).parent / "tbhns"), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
                    break
            except OSError:
                time.sleep(0.5)
        assert server.poll() is None, f"{command.where()} exited: {server.communicate()[1][-2000:]}"
        url = f"http://127.0.0.1:{port}/search?query=board+game&mode=hybrid&k=5"
        with urllib.request.urlopen(url, timeout=60) as response:
            return {"status": response.status, "hits": json.loads(response.read())["hits"]}
    finally:
        server.terminate()
        server.wait(timeout=60)


def test_the_readme_node_commands_run_as_written_on_a_free_port() -> None:
    """`tbhns opensearch start`, `status` and `stop` of the README on a free port (the README's 9200 may be
    someone's node): the node starts and answers, and after stop it is gone; its data folder is removed."""
    commands = readme_commands("opensearch")
    assert [command.args[1] for command in commands] == ["start", "status", "stop"]
    port = str(free_port())
    data_dir = default_cache_dir() / "nodes" / port
    assert not data_dir.exists(), f"{data_dir} is someone else's"
    try:
        for command in commands:
            result = CliRunner().invoke(cli, with_option(list(command.args), "--port", port))
            assert result.exit_code == 0, f"{command.where()}\nexit {result.exit_code}:\n{result.output}"
            if command.args[1] == "status":
                assert json.loads(result.output)["health"]["status"] in ("green", "yellow"), result.output
        gone = CliRunner().invoke(cli, ["opensearch", "status", "--port", port])
        assert gone.exit_code == 1 and json.loads(gone.output)["health"] is None, gone.output
    finally:
        CliRunner().invoke(cli, ["opensearch", "stop", "--port", port])
        shutil.rmtree(data_dir, ignore_errors=True)


def test_the_tour_covers_what_the_readme_promises() -> None:
    commands = tour_commands()
    assert commands, f"no `tbhns` command in a README block marked {MARKER}"
    names = [command.args[0] for command in commands]
    assert names.index("ingest") < names.index("search") and "ingest-users" in names
    modes = {c.args[c.args.index("--mode") + 1] for c in commands if c.args[0] == "search" and "--mode" in c.args}
    assert modes == {"bm25", "semantic", "personalized", "hybrid"}
    assert not {"opensearch", "serve"} & {command.args[0] for command in commands}, "the tour must not start anything"


def test_the_readme_tour_runs_as_written(
    opensearch_config: OpenSearchConfig,
    os_client,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alias = f"tour-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("OPENSEARCH_URL", opensearch_config.url)
    monkeypatch.chdir(ROOT)
    fixtures_before = sorted(path.name for path in (ROOT / "tests" / "fixtures").iterdir())
    outputs: dict[Command, str] = {}
    try:
        for command in tour_commands():
            result = CliRunner().invoke(cli, with_alias(command.args, alias))
            assert result.exit_code == 0, f"{command.where()}\nexit {result.exit_code}:\n{result.output}"
            outputs[command] = result.stdout  # stderr (progress bars) is apart, as in a shell
        printed = [
            run_python(block, alias)
            for block in fenced_blocks(README)
            if block.marker == MARKER and block.language == "python"
        ]
        served = serve_as_written(readme_commands("serve"), alias, opensearch_config.url)
    finally:
        os_client.indices.delete(index=f"{alias}-*,users-{alias}", ignore_unavailable=True)
        os_client.indices.delete_index_template(name=IndexConfig(alias=alias).template_name, ignore=[404])
    assert sorted(path.name for path in (ROOT / "tests" / "fixtures").iterdir()) == fixtures_before

    assert served["status"] == 200 and served["hits"], served  # the README's curl of the served API
    assert printed, f"no python block marked {MARKER}"
    for lines in printed:  # the example prints the mode, path and personalization, then one line per hit
        mode, _, personalization = lines[0].split()[:3]
        assert mode == "hybrid" and personalization in ("blend", "learned") and len(lines) >= 2, lines
    for command, output in outputs.items():
        if command.args[0] == "ingest":
            assert "read=1500 indexed=1500 rejected=0" in output, output
        elif command.args[0] == "ingest-users":
            assert "source=simulated" in output, output
        elif "--json" in command.args:  # search: the response as JSON
            response = json.loads(output)
            assert response["hits"] and response["mode"] == command.args[command.args.index("--mode") + 1], output
            assert not response["fallback"] and ("--user" not in command.args or response["personalization"]), output
        else:  # search: a table titled with the mode that answered and how
            mode = command.args[command.args.index("--mode") + 1]
            assert f": {mode}" in output and "fallback" not in output, output
            assert "--user" not in command.args or "personalization" in output, output
