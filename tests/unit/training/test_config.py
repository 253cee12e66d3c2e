"""Training configs: files parse into frozen dataclasses, and every bad value fails early with a clear message."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from tbhns_opensearch.errors import ConfigError
from tbhns_opensearch.training.config import DataConfig, SamplerConfig, TrainConfig, load_train_config
from tests.helpers import ROOT

MINIMAL = '[data]\ndataset = "icecat"\nqueries = "judgments"\n'


def _load(tmp_path: Path, text: str, name: str = "run.toml") -> TrainConfig:
    path = tmp_path / name
    path.write_text(text)
    return load_train_config(path)


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "training").glob("*.toml")))
def test_committed_configs_load(name: str) -> None:
    config = load_train_config(ROOT / "training" / name)
    assert config.output_dir == f"runs/train/{Path(name).stem}"
    assert config.negatives_per_pair >= 0


def test_defaults_and_tables(tmp_path: Path) -> None:
    config = _load(tmp_path, "max_steps = 7\n" + MINIMAL + '[sampler]\nname = "bm25"\ncount = 3\n')
    assert (config.max_steps, config.loss, config.device) == (7, "mnrl", "cpu")
    assert config.data == DataConfig(dataset="icecat", queries="judgments")
    assert config.sampler.params == {"count": 3, "depth": 30, "cosine_threshold": 0.95}
    assert config.negatives_per_pair == 3
    with pytest.raises(FrozenInstanceError):
        config.max_steps = 8  # type: ignore[misc]


def test_json_config(tmp_path: Path) -> None:
    raw = {"batch_size": 4, "data": {"catalog": "c.jsonl"}, "sampler": {"name": "random"}}
    config = _load(tmp_path, json.dumps(raw), "run.json")
    assert (config.batch_size, config.data.name, config.negatives_per_pair) == (4, "c", 0)


def test_overrides_ignore_unset_flags(tmp_path: Path) -> None:
    config = _load(tmp_path, MINIMAL).with_overrides(device=None, max_steps=5, output_dir="/tmp/x")
    assert (config.device, config.max_steps, config.output_dir) == ("cpu", 5, "/tmp/x")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max_stesp = 3\n" + MINIMAL, r"unknown key\(s\) \['max_stesp'\]; valid keys: .*max_steps"),
        ("max_steps = 3\n", r"\[data\]: missing or not a table"),
        (MINIMAL + '[sampler]\nname = "hard"\n', r"name='hard' is unknown; valid names: random, taxonomy, bm25, ance"),
        (
            'loss = "ntxent"\n' + MINIMAL,
            r"loss='ntxent' is unknown; valid losses: mnrl, cached_mnrl, masked_mnrl, margin",
        ),
        ('loss = "margin"\n' + MINIMAL, r"margin.* takes exactly one negative per row, the 'taxonomy' sampler gives 2"),
        ("batch_size = 1\n" + MINIMAL, r"batch_size=1: in-batch negatives need at least 2 rows"),
        (
            'directions = ["doc_to_query"]\n' + MINIMAL,
            r"directions=\['doc_to_query'\]: list \"query_to_doc\" and any of",
        ),
        (
            'loss = "masked_mnrl"\ndirections = ["query_to_doc", "doc_to_doc"]\n' + MINIMAL,
            r"directions: only with loss \"mnrl\" or \"cached_mnrl\", not 'masked_mnrl'",
        ),
        (
            'hardness_mode = "hardest"\n' + MINIMAL,
            r"hardness_mode='hardest' is unknown; use one of none, hard_negatives",
        ),
        (
            'loss = "masked_mnrl"\nhardness_mode = "hard_negatives"\n' + MINIMAL,
            r"hardness_mode: only with loss \"mnrl\"",
        ),
        ("hardness_strength = -1.0\n" + MINIMAL, r"\{'hardness_strength': -1.0\} must be >= 0"),
        ('max_steps = "ten"\n' + MINIMAL, r"not supported between instances of 'str' and 'int'"),
        ('[data]\ndataset = "icecat"\ncatalog = "c.jsonl"\n', r"exactly one of dataset or catalog"),
        ('[data]\ncatalog = "c.jsonl"\nqueries = "judgments"\n', r"needs a dataset with judgments"),
        (
            '[data]\ncatalog = "c.jsonl"\nqueries = "mine"\n',
            r"queries='mine': use judgments or generated or orders or a .jsonl path",
        ),
        ('[data]\ncatalog = "c.jsonl"\ntaxonomy = "induced:attribute"\n', r"needs type_attribute"),
        ('[data]\ncatalog = "c.jsonl"\nrelevance_threshold = 0\n', r"must be >= 1"),
        (MINIMAL + "[sampler]\nleaf = -1\n", r"\{'leaf': -1\} must be >= 0"),
        ("max_steps = [\n", r"is not valid TOML"),
    ],
)
def test_bad_configs_name_the_value_and_the_fix(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        _load(tmp_path, text)


def test_missing_file_points_at_the_examples(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist; see training/\*.toml"):
        load_train_config(tmp_path / "nope.toml")


def test_margin_loss_with_one_negative() -> None:
    config = TrainConfig(data=DataConfig(catalog="c.jsonl"), sampler=SamplerConfig(leaf=1, sibling=0), loss="margin")
    assert config.negatives_per_pair == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[data]\ndataset = "homedepot"\nqueries = "judgments"\ntaxonomy = "assigned"\n',
            r"taxonomy_file=''.*tbhns taxonomy assign",
        ),
        (
            '[data]\ndataset = "homedepot"\nqueries = "judgments"\ntaxonomy_file = "a.jsonl"\n',
            r"goes with taxonomy=\"assigned\"",
        ),
        ('[data]\ndataset = "homedepot"\nqueries = "judgments"\n[stage2]\nmax_steps = 0\n', r"\[stage2\].*max_steps"),
        (
            '[data]\ndataset = "homedepot"\nqueries = "judgments"\n[stage2]\nsteps = 5\n',
            r"\[stage2\]: unknown key\(s\) \['steps'\]",
        ),
    ],
)
def test_assigned_taxonomy_and_stage2_are_checked(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected):
        load_train_config(path)
