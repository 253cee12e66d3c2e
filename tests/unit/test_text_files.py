"""Every reader of a file a user hands in (data sets in the published layouts, hidden test sets in the same
layouts, configs) turns bytes that are not UTF-8 and CSV that `csv` cannot read into one error naming the file
and the fix: before, these escaped as a UnicodeDecodeError or csv.Error traceback.

Data: hand-made bytes and headers only (no rows of any real set)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tbhns_opensearch.bench.runner import BenchConfig
from tbhns_opensearch.catalog.adapters.homedepot import read_homedepot_judgments
from tbhns_opensearch.catalog.adapters.instacart import instacart_rows
from tbhns_opensearch.catalog.adapters.wands import load_wands_queries, wands_judgments
from tbhns_opensearch.catalog.judgments import read_judgments_csv
from tbhns_opensearch.errors import BenchError, CatalogError, ConfigError, EvaluationError, PersonalizationError
from tbhns_opensearch.eval.queries import read_labelled_queries
from tbhns_opensearch.taxonomy_assign import CategoryTree, read_assignments
from tbhns_opensearch.training.config import load_train_config
from tbhns_opensearch.users.events import read_history
from tbhns_opensearch.users.sequences import ORDER_LINE_COLUMNS, read_order_sequences
from tbhns_opensearch.users.sources import read_instacart_events

NOT_UTF8 = b"\xff\xfe garbage\n"
ORDER_LINES = ",".join(ORDER_LINE_COLUMNS)
INSTACART_NAMES = {"aisles.csv": "aisle_id,aisle", "departments.csv": "department_id,department"}
INSTACART_ORDERS = {
    "orders.csv": "order_id,user_id,eval_set,order_number",
    "order_products__prior.csv": "order_id,product_id,add_to_cart_order,reordered",
}

# (reader, error, the file it reads, the header of its other files {name: header})
READERS: dict[str, tuple[Callable[[Path], object], type[Exception], str, dict[str, str]]] = {
    "judgments": (lambda d: read_judgments_csv(d / "j.csv"), CatalogError, "j.csv", {}),
    "home depot judgments": (lambda d: read_homedepot_judgments(d / "j.csv"), CatalogError, "j.csv", {}),
    "instacart aisles": (
        lambda d: list(instacart_rows(d)),
        CatalogError,
        "aisles.csv",
        {"departments.csv": INSTACART_NAMES["departments.csv"], "products.csv": "product_id,product_name"},
    ),
    "wands queries": (load_wands_queries, CatalogError, "query.csv", {}),
    "wands labels": (
        lambda d: wands_judgments(d / "label.csv"),
        CatalogError,
        "label.csv",
        {"query.csv": "query_id\tquery\tquery_class"},
    ),
    "instacart orders": (
        read_instacart_events,
        PersonalizationError,
        "orders.csv",
        {"order_products__prior.csv": INSTACART_ORDERS["order_products__prior.csv"]},
    ),
    "order lines": (lambda d: read_order_sequences(d / "o.csv", []), PersonalizationError, "o.csv", {}),
    "history csv": (lambda d: read_history(d / "h.csv"), PersonalizationError, "h.csv", {}),
    "history jsonl": (lambda d: read_history(d / "h.jsonl"), PersonalizationError, "h.jsonl", {}),
    "labelled queries": (lambda d: read_labelled_queries(d / "q.jsonl"), EvaluationError, "q.jsonl", {}),
    "taxonomy assignments": (lambda d: read_assignments(d / "a.jsonl"), CatalogError, "a.jsonl", {}),
    "category tree": (lambda d: CategoryTree.read(d / "t.txt"), CatalogError, "t.txt", {}),
    "training config": (lambda d: load_train_config(d / "c.toml"), ConfigError, "c.toml", {}),
    "benchmark config": (lambda d: BenchConfig.from_toml(d / "c.toml"), BenchError, "c.toml", {}),
}


def _write(directory: Path, files: dict[str, str]) -> None:
    for name, header in files.items():
        (directory / name).write_text(header + "\n", encoding="utf-8")


@pytest.mark.parametrize("reader", list(READERS))
def test_bytes_that_are_not_utf8_are_one_error_naming_the_file(reader: str, tmp_path: Path) -> None:
    read, error, name, others = READERS[reader]
    _write(tmp_path, others)
    (tmp_path / name).write_bytes(NOT_UTF8)
    with pytest.raises(error) as caught:
        read(tmp_path)
    message = str(caught.value)
    assert str(tmp_path / name) in message and "byte 0xff" in message and "save" in message and "UTF-8" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("reader", "header"),
    [
        ("instacart aisles", INSTACART_NAMES["aisles.csv"]),
        ("instacart orders", INSTACART_ORDERS["orders.csv"]),
        ("order lines", ORDER_LINES),
        ("history csv", "user_id,product_id,event,timestamp"),
    ],
)
def test_a_field_over_the_csv_size_limit_is_one_error_naming_the_line(reader: str, header: str, tmp_path: Path) -> None:
    read, error, name, others = READERS[reader]
    _write(tmp_path, others)
    rows = ",".join(["1"] * header.count(","))
    (tmp_path / name).write_text(f'{header}\n{rows},1\n{rows},"{"x" * 200_000}"\n', encoding="utf-8")
    with pytest.raises(error, match=r":3: not CSV \(field larger than field limit \(131072\)\); fix the line"):
        read(tmp_path)


@pytest.mark.parametrize("reader", ["training config", "benchmark config"])
def test_a_config_that_is_a_folder_a_fifo_or_not_a_table_is_one_error(reader: str, tmp_path: Path) -> None:
    read, error, name, _ = READERS[reader]
    (tmp_path / name).mkdir()
    with pytest.raises(error, match=r"c.toml' is a directory; see "):
        read(tmp_path)
    (tmp_path / name).rmdir()
    os.mkfifo(tmp_path / name)  # read whole, it would wait for a writer forever
    with pytest.raises(error, match=r"c.toml' is not a regular file \(a device, FIFO or socket\); see "):
        read(tmp_path)
    (tmp_path / "c.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"holds a JSON list, not a table of settings; see training/\*\.toml"):
        load_train_config(tmp_path / "c.json")


def test_the_benchmark_cli_says_a_broken_config_in_one_line(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from tbhns_opensearch.cli.app import main

    config = tmp_path / "bench.toml"
    config.write_text('title = "x"\n[[[systems\n', encoding="utf-8")
    monkeypatch.setattr("sys.argv", ["tbhns", "bench", "run", str(config), "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: benchmark config {config} is not valid TOML: ")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "reader",
    [
        "judgments",
        "home depot judgments",
        "wands queries",
        "history csv",
        "order lines",
        "taxonomy assignments",
        "category tree",
    ],
)
def test_a_folder_where_a_file_should_be_is_named_as_a_folder(reader: str, tmp_path: Path) -> None:
    read, error, name, others = READERS[reader]
    _write(tmp_path, others)
    (tmp_path / name).mkdir()
    with pytest.raises(error, match=rf"{name}'? is a directory; "):  # it said "does not exist"
        read(tmp_path)


@pytest.mark.parametrize("reader", ["judgments", "instacart orders", "order lines", "history csv"])
def test_an_empty_csv_is_named_empty_with_the_columns_it_needs(reader: str, tmp_path: Path) -> None:
    read, error, name, others = READERS[reader]
    _write(tmp_path, others)
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(error, match=rf"{name} is empty; \w+"):  # it said "the header lacks columns [...] (has None)"
        read(tmp_path)
