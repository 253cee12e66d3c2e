"""`tbhns train` with a `[personalization]` table: the config, aisle queries of train users ("orders"), the
base encoder kept by `max_steps = 0`, and the user model written beside it (files, manifest entry, card).

Data: `tests/fixtures/training_orders/`, hand-made files in Instacart's layouts (invented products and orders,
no Instacart rows): 24 users, 6 aisles under 3 departments, one product without an aisle and one line whose
product `products.csv` lacks."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tbhns_opensearch.cli import cli
from tbhns_opensearch.encoder import Encoder
from tbhns_opensearch.errors import ConfigError
from tbhns_opensearch.training.config import (
    DataConfig,
    PersonalizationTrainConfig,
    TrainConfig,
    load_train_config,
)
from tbhns_opensearch.training.data import prepare_data
from tbhns_opensearch.training.pipeline import train_and_export
from tbhns_opensearch.users.attention import load_user_model
from tbhns_opensearch.users.sequences import user_split
from tests.helpers import FIXTURES

ORDERS = FIXTURES / "training_orders"
TABLES = f"""\
max_steps = 0
max_seq_length = 32
quantize = false
[data]
dataset = "instacart"
data_dir = "{ORDERS}"
queries = "orders"
min_grade = 1
[sampler]
name = "taxonomy"
leaf = 0
sibling = 1
[personalization]
order_lines = "{ORDERS / "order_lines.csv"}"
epochs = 3
batch_size = 32
same_aisle = 2
sibling_aisles = 1
"""


def _load(tmp_path: Path, text: str) -> TrainConfig:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return load_train_config(path)


def test_personalization_table_parses_with_defaults(tmp_path: Path) -> None:
    config = _load(tmp_path, 'device = "cuda"\n' + TABLES)
    table = config.personalization
    assert table is not None and config.max_steps == 0 and config.device == "cuda"
    assert (table.epochs, table.batch_size, table.same_aisle, table.sibling_aisles) == (3, 32, 2, 1)
    assert (table.max_history, table.query_form, table.seed, table.validation, table.test) == (50, "aisle", 0, 0.2, 0.2)
    assert table.products == str(ORDERS)  # [data]'s instacart folder when products is left out


@pytest.mark.parametrize(
    ("replace", "expected"),
    [
        (
            ("order_lines = ", "lines = "),
            r"\[personalization\]: unknown key\(s\) \['lines'\]; valid keys: .*order_lines",
        ),
        (("epochs = 3", "max_history = 0"), r"\[personalization\] \{'max_history': 0\}: max_history must be a whole"),
        (("batch_size = 32", "batch_size = 1"), r"\{'batch_size': 1\}: .*batch_size >= 2"),
        (("epochs = 3", "epochs = -1"), r"\[personalization\] \{'epochs': -1\} must be >= 0"),
        (("epochs = 3", "temperature = 0.0"), r"temperature=0.0 must be positive"),
        (("epochs = 3", 'query_form = "brand"'), r"query_form='brand'; use one of aisle, path"),
        (("epochs = 3", "validation = 0.0"), r"validation=0.0 and test=0.2: give shares"),
        (("epochs = 3", "test = 0.0"), r"validation=0.2 and test=0.0: give shares of users above 0"),
        (("epochs = 3", "validation = 0.5\ntest = 0.5"), r"sum\s+below 1"),
        (("max_steps = 0", "max_steps = -1"), r"\{'max_steps': -1\} must be >= 0"),
        (('dataset = "instacart"', 'dataset = "icecat"'), r"queries=\"orders\" joins order lines with Instacart's"),
        (("min_grade = 1", "catalog_limit = 10"), r"remove catalog_limit=10"),
    ],
)
def test_bad_personalization_values_name_the_key_and_fix(
    tmp_path: Path, replace: tuple[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        _load(tmp_path, TABLES.replace(*replace))


def test_orders_need_the_personalization_table(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"queries=\"orders\" derives queries .*add that table"):
        _load(tmp_path, TABLES.split("[personalization]")[0])
    with pytest.raises(ConfigError, match=r"\[personalization\] needs order_lines"):
        PersonalizationTrainConfig()


def _lines_by_split() -> dict[str, list[dict[str, str]]]:
    named = {row["product_id"]: row for row in csv.DictReader((ORDERS / "products.csv").open())}
    aisles = {row["aisle_id"]: row["aisle"] for row in csv.DictReader((ORDERS / "aisles.csv").open())}
    out: dict[str, list[dict[str, str]]] = {"train": [], "validation": [], "test": []}
    for line in csv.DictReader((ORDERS / "order_lines.csv").open()):
        product = named.get(line["product_id"])
        if product and aisles[product["aisle_id"]] != "missing":
            out[user_split(line["user_id"])].append({**line, "aisle": aisles[product["aisle_id"]]})
    return out


def test_order_queries_train_on_train_users_only(tmp_path: Path) -> None:
    config = _load(tmp_path, TABLES)
    data = prepare_data(config.data, config.seed, config.personalization)
    lines = _lines_by_split()
    bought = Counter((line["aisle"], line["product_id"]) for line in lines["train"])
    assert {(j.query, j.product_id): j.grade for j in data.train_judgments} == dict(bought)  # graded by purchases
    assert Counter((p.query, p.positive_id) for p in data.train_pairs) == bought  # a training row per purchase
    assert all(j.source == "generated" for j in data.train_judgments)  # derived from categories, not typed
    for split in ("validation", "test"):
        evaluated = getattr(data, split)
        users = {qid.split("/")[0] for qid in evaluated.qrels}
        assert users == {line["user_id"] for line in lines[split]}  # every such user, their last order only
        last = {u: max(int(line["order_number"]) for line in lines[split] if line["user_id"] == u) for u in users}
        expected = {
            f"{line['user_id']}/{line['aisle']}"
            for line in lines[split]
            if int(line["order_number"]) == last[line["user_id"]]
        }
        assert set(evaluated.qrels) == expected
    counts = data.report
    assert (
        counts["order_lines_dropped_unnamed"],
        counts["train_users"] + counts["validation_users"] + counts["test_users"],
    ) == (24, 24)
    higher = prepare_data(
        DataConfig(dataset="instacart", data_dir=str(ORDERS), queries="orders", min_grade=3), 0, config.personalization
    )
    assert {(p.query, p.positive_id) for p in higher.train_pairs} == {key for key, n in bought.items() if n >= 3}
    top = prepare_data(
        DataConfig(dataset="instacart", data_dir=str(ORDERS), queries="orders", min_grade=1, max_positives_per_query=1),
        0,
        config.personalization,
    )
    most = {aisle: max(sorted(n for (a, _), n in bought.items() if a == aisle)) for aisle, _ in bought}
    assert {(p.query, bought[(p.query, p.positive_id)]) for p in top.train_pairs} == set(most.items())


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`tbhns train` on the hand-made files: the base encoder kept (max_steps = 0) and a user model beside it."""
    folder = tmp_path_factory.mktemp("learned")
    path = folder / "run.toml"
    path.write_text(f'output_dir = "{folder / "model"}"\n' + TABLES)
    result = CliRunner().invoke(cli, ["train", str(path)])
    assert result.exit_code == 0, result.output
    return folder / "model", result.output


def test_max_steps_zero_exports_the_base_encoder_unchanged(trained: tuple[Path, str]) -> None:
    directory, _ = trained
    texts = ["Greek Yogurt | dairy eggs > yogurt", "tea"]
    assert np.array_equal(Encoder(str(directory)).encode(texts), Encoder(max_seq_length=32).encode(texts))
    card = (directory / "MODEL_CARD.md").read_text()
    assert "no encoder training (max_steps = 0): the base model `all-MiniLM-L6-v2` is exported unchanged" in card
    assert "## Negatives (drawn, never trained on: max_steps = 0)" in card
    log = [json.loads(line) for line in (directory / "train_log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in log] == [0] and "recall@24" in log[0]["validation"]


def test_user_model_manifest_entry_and_card(trained: tuple[Path, str]) -> None:
    directory, output = trained
    entry = json.loads((directory / "tbhns_manifest.json").read_text())["user_model"]
    model = load_user_model(directory / entry["path"])
    assert (entry["path"], entry["max_history"], entry["dim"]) == ("user_model", 50, 384)
    assert model.config.max_history == 50 and model.config.dim == 384
    assert (entry["train_users"], entry["validation_users"], entry["products"], entry["epochs"]) == (16, 3, 24, 3)
    assert entry["train_examples"] > 100 and entry["device"] == "cpu"
    assert entry["train_loss"][-1] < entry["train_loss"][0]  # training lowers the contrastive loss
    assert set(entry["validation"]["plain"]) == set(entry["validation"]["learned"]) >= {"recall@24", "ndcg@10"}
    card = (directory / "MODEL_CARD.md").read_text()
    section = card.split("## User model (learned personalization)")[1]
    assert "REAL users" in section and "DERIVED aisle queries" in section and "VALIDATION split" in section
    assert (
        f"| ndcg@10 | {entry['validation']['plain']['ndcg@10']:.4f} | {entry['validation']['learned']['ndcg@10']:.4f} |"
        in section
    )
    assert json.loads((directory / "model_card.json").read_text())["personalization"] == entry
    assert "user model, best epoch" in output and "DERIVED aisle queries: recall@24" in output


def test_a_run_without_personalization_drops_a_stale_user_model(tmp_path: Path) -> None:
    stale = tmp_path / "user_model"
    stale.mkdir()
    (stale / "user_model.json").write_text("{}")
    plain = TrainConfig(
        data=DataConfig(dataset="instacart", data_dir=str(ORDERS), queries="generated"),
        max_steps=0,
        quantize=False,
        output_dir=str(tmp_path),
    )
    assert train_and_export(plain).user_model is None
    assert not stale.exists()  # it was trained on other vectors: never served with this encoder


def test_a_stale_user_model_is_dropped_but_nothing_else_in_its_folder(tmp_path: Path) -> None:
    """Only the files a user model is made of go: a file of the user's own in that folder stays."""
    stale = tmp_path / "user_model"
    stale.mkdir()
    for name in ("user_model.json", "user_model.safetensors", "notes.txt"):
        (stale / name).write_text("{}")
    plain = TrainConfig(
        data=DataConfig(dataset="instacart", data_dir=str(ORDERS), queries="generated"),
        max_steps=0,
        quantize=False,
        output_dir=str(tmp_path),
    )
    assert train_and_export(plain).user_model is None
    assert sorted(p.name for p in stale.iterdir()) == ["notes.txt"]
