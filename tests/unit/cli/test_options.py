"""Options that take their default and help from a config dataclass's field (`cli.options`)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field

import click
import pytest
from click.testing import CliRunner

from tbhns_opensearch.cli import cli
from tbhns_opensearch.cli.options import FieldOption, field_option, field_options, source_default


@dataclass(frozen=True)
class Demo:
    depth: int = field(default=24, metadata={"help": "candidates per sub-query"})
    weights: tuple[float, float] = field(default=(0.6, 0.4), metadata={"help": "(bm25, vector) weights"})
    names: list[str] = field(default_factory=lambda: ["a", "b"])


def demo_command() -> click.Command:
    @click.command()
    @field_option("--depth", source=f"{__name__}:Demo.depth", type=click.IntRange(1, 100))
    @field_option("--bm25-weight", source=f"{__name__}:Demo.weights", pick=lambda w: w[0], help="BM25 weight")
    @field_option("--names", source=f"{__name__}:Demo.names", pick=lambda _: (), shown=",".join, multiple=True)
    def demo(depth: int, bm25_weight: float, names: tuple[str, ...]) -> None:
        click.echo(f"{depth!r} {bm25_weight!r} {names!r}")

    return demo


def test_a_field_option_takes_the_fields_default_type_and_help() -> None:
    runner = CliRunner()
    assert runner.invoke(demo_command(), []).output == "24 0.6 ()\n"
    assert runner.invoke(demo_command(), ["--depth", "7", "--bm25-weight", "0.25"]).output == "7 0.25 ()\n"
    assert "not in the range 1<=x<=100" in runner.invoke(demo_command(), ["--depth", "0"]).output
    assert "'x' is not a valid float" in runner.invoke(demo_command(), ["--bm25-weight", "x"]).output
    shown = " ".join(runner.invoke(demo_command(), ["--help"]).output.split())
    assert "--depth INTEGER RANGE candidates per sub-query [default: 24; 1<=x<=100]" in shown
    assert "--bm25-weight FLOAT BM25 weight [default: 0.6]" in shown
    assert "--names TEXT [default: a,b]" in shown


def test_a_source_names_a_field_a_keyword_or_a_constant_and_a_wrong_one_is_named() -> None:
    assert source_default(f"{__name__}:Demo.names") == (["a", "b"], "")
    assert source_default("tbhns_opensearch.query:SearchClient.search.k") == (24, "")
    assert source_default("tbhns_opensearch.config:DEFAULT_ENCODER") == ("all-MiniLM-L6-v2", "")
    with pytest.raises(LookupError, match=r"Demo has no field 'dept'; its fields are \['depth', 'names', 'weights'\]"):
        source_default(f"{__name__}:Demo.dept")
    with pytest.raises(TypeError, match="takes its default from the field, not default="):
        FieldOption(["--depth"], source=f"{__name__}:Demo.depth", default=3)


def test_every_field_option_of_tbhns_reads_its_source_and_shows_its_default() -> None:
    options = field_options(cli)
    assert len(options) > 40  # search, serve, ingest, ingest-users, opensearch, deploy, export, taxonomy
    for option in options:
        default, help_text = source_default(option.source)
        option.resolve()
        assert option.help, f"{option.opts} ({option.source}) has no help"
        assert option.default == (option.pick(default) if option.pick else default), option.source
        if help_text and option.help != help_text + option.note:
            assert option.source.endswith(".weights"), f"{option.opts} replaces the help of {option.source}"


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        (["search"], ["--k INTEGER number of hits [default: 24]", "[default: 0.6; 0.0<=x<=1.0]", "[default: 9200]"]),
        (["serve"], ["--threads INTEGER RANGE searches served at once", "[default: 16; 1<=x<=1024]"]),
        (["ingest"], ["--m INTEGER HNSW graph degree [default: 16]", "--replicas INTEGER RANGE copies of each"]),
        (["ingest-users"], ["[default: purchase=1, add_to_cart=0.5, click=0.2]", "[default: 2592000.0]"]),
        (["opensearch", "start"], ["--heap TEXT JVM heap, e.g. 1g or 2g", "[default: 1g]"]),
        (["export"], ["--int8-tolerance FLOAT RANGE", "[default: 0.01; 0<=x<=1]"]),
        (["taxonomy", "assign"], ["[default: 0.5]", "[default: 0.02]", "[default: all-MiniLM-L6-v2]"]),
    ],
)
def test_help_shows_the_defaults_the_fields_hold(command: list[str], shown: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"], terminal_width=400, max_content_width=400)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    for expected in shown:
        assert expected in text


def test_listing_the_commands_imports_none_of_the_modules_behind_them() -> None:
    code = "import sys; from tbhns_opensearch.cli import cli; print(sorted({'numpy', 'fastapi'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
