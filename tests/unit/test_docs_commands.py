"""Every command the README and docs/ show runs as written, as far as a unit test can tell without a cluster.

- Each `tbhns ...` line of a fenced shell block (```bash, ```sh, ```console, ```shell) of README.md and
  docs/*.md parses against the real click CLI: the subcommand chain is resolved from `tbhns_opensearch.cli:cli`
  and the last command's `make_context(..., resilient_parsing=False)` runs inside the parent contexts, so an
  unknown option or command, a wrong choice, a value out of range or a missing required argument fails,
  naming the file, the line and the command. `\\` continuations are joined, a leading `$ ` is stripped, and a
  line may hold several commands (`&&`, `|`, `;`, `&`) after `VAR=value`, `time` or `taskset -c N`.
- Paths need not exist for parsing: the docs name the reader's own files (`catalog.jsonl`, `history.csv`) and
  the public data sets outside the repository. The check relaxes exactly `click.Path(exists=True)` (the value
  is still converted and checked otherwise); every other parameter check stays.
- Every repository path the README and docs cite (`tests/...`, `benchmarks/...`, `training/...`, `docs/...`,
  globs included) exists, and every relative Markdown link resolves, with its `#anchor` among the target's
  headings.

`tests/integration/test_readme_tour.py` runs the README blocks marked `<!-- tour: ... -->` on the real node.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from tbhns_opensearch.cli import cli
from tests.doc_blocks import DOCS, Command, doc_commands, fenced_blocks, tbhns_invocations
from tests.helpers import ROOT

CITED_PATH = re.compile(r"(?<![\w./~$-])((?:tests|benchmarks|training|docs)/[\w.*/<>-]*)")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def parse(args: tuple[str, ...]) -> None:
    """Parse `tbhns ARGS` as click would run it, without running it; click's UsageError when it does not parse."""
    with click.Context(cli, info_name="tbhns", resilient_parsing=False) as context:
        command: click.Command = cli
        rest = list(args)
        while isinstance(command, click.Group):
            if rest in ([], ["--help"]):
                return
            name, found, rest = command.resolve_command(context, rest)
            if found is None:  # resolve_command raises for an unknown name; this keeps the type checker honest
                raise click.UsageError(f"no such command {name!r}")
            command = found
            context = click.Context(command, info_name=name, parent=context, resilient_parsing=False)
        try:
            command.make_context(context.info_name, rest, parent=context.parent, resilient_parsing=False)
        except click.exceptions.Exit as done:  # --help
            if done.exit_code != 0:
                raise


@pytest.fixture
def paths_need_not_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    """`click.Path(exists=True)` accepts a path that is not there; every other check of the type stays."""
    convert = click.Path.convert

    def relaxed(self: click.Path, value, param, ctx):  # type: ignore[no-untyped-def]
        exists, self.exists = self.exists, False
        try:
            return convert(self, value, param, ctx)
        finally:
            self.exists = exists

    monkeypatch.setattr(click.Path, "convert", relaxed)


COMMANDS = doc_commands()


def test_the_docs_show_commands() -> None:
    assert len(COMMANDS) >= 40, [command.where() for command in COMMANDS]
    assert {path.name for path in DOCS} >= {"README.md", "operating-opensearch.md", "training.md"}
    assert any(command.path.name == "README.md" for command in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: f"{c.path.relative_to(ROOT)}:{c.line}")
def test_every_tbhns_command_parses(command: Command, paths_need_not_exist: None) -> None:
    try:
        parse(command.args)
    except click.UsageError as exc:
        pytest.fail(f"{command.where()}\n  does not parse: {exc.format_message()}", pytrace=False)


@pytest.mark.parametrize(
    "line",
    [
        "tbhns search 'kite' --mode nope",  # a wrong choice
        "tbhns ingest catalog.jsonl --no-such-option",  # an unknown option
        "tbhns train",  # a missing required argument
        "tbhns queries generate --dataset icecat",  # a missing required option (--out)
        "tbhns opensearch begin",  # an unknown subcommand
        "tbhns serve --threads 0",  # out of range
        "OPENSEARCH_URL=http://x:9200 tbhns search kite --k many && echo done",  # found after an assignment
    ],
)
def test_the_check_refuses_a_wrong_command(line: str, paths_need_not_exist: None) -> None:
    (args,) = tbhns_invocations(line)
    with pytest.raises(click.UsageError):
        parse(tuple(args))


def test_the_check_reads_lines_as_a_shell_would(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        'text\n\n<!-- tour: here -->\n```bash\n$ tbhns search "a b" --mode bm25 \\\n    --k 5   # five\n'
        "export X=$(python -c 'print(1)')\nX=1 tbhns opensearch status & tbhns serve --no-warm\n```\n"
        "```python\ntbhns = 1\n```\n",
        encoding="utf-8",
    )
    blocks = list(fenced_blocks(doc))
    assert [block.marker for block in blocks] == ["<!-- tour: here -->", None]
    assert [(c.line, c.args) for c in doc_commands((doc,))] == [
        (5, ("search", "a b", "--mode", "bm25", "--k", "5")),
        (8, ("opensearch", "status")),
        (8, ("serve", "--no-warm")),
    ]


def headings(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings (outside code blocks)."""
    anchors = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_cited_path_exists(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    missing = []
    for match in CITED_PATH.finditer(text):
        cited = match.group(1).rstrip(".,:;")
        if "<" in cited or ">" in cited:  # a placeholder: tests/unit/<package>/
            continue
        found = list(ROOT.glob(cited)) if "*" in cited else [ROOT / cited] if (ROOT / cited).exists() else []
        if not found:
            missing.append(cited)
    for match in LINK.finditer(text):
        target = match.group(1)
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        resolved = (doc.parent / file) if file else doc
        if not resolved.exists():
            missing.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in headings(resolved):
            missing.append(f"{target} (no such heading)")
    assert not missing, f"{doc.relative_to(ROOT)} cites what the repository does not have: {missing}"
