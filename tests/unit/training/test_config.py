"""Training configs: files parse into frozen dataclasses, and every bad value fails early with a clear message."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from tbhns_opensearch.errors import ConfigError
from tbhns_opensearch.training.config import DataConfig, LossConfig, SamplerConfig, TrainConfig, load_train_config
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
    assert (config.max_steps, config.loss.name, config.device) == (7, "mnrl", "cpu")
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
            MINIMAL + '[loss]\nname = "ntxent"\n',
            r"loss='ntxent' is unknown; valid losses: mnrl, cached_mnrl, masked_mnrl, margin",
        ),
        (
            MINIMAL + '[loss]\nname = "margin"\n',
            r"margin.* takes exactly one negative per row, the 'taxonomy' sampler gives 2",
        ),
        ("batch_size = 1\n" + MINIMAL, r"batch_size=1: in-batch negatives need at least 2 rows"),
        (
            MINIMAL + '[loss]\ndirections = ["doc_to_query"]\n',
            r"directions=\['doc_to_query'\]: list \"query_to_doc\" and any of",
        ),
        (
            MINIMAL + '[loss]\nname = "masked_mnrl"\ndirections = ["query_to_doc", "doc_to_doc"]\n',
            r"directions: only with loss \"mnrl\" or \"cached_mnrl\", not 'masked_mnrl'",
        ),
        (
            MINIMAL + '[loss]\nhardness_mode = "hardest"\n',
            r"hardness_mode='hardest' is unknown; use one of none, hard_negatives",
        ),
        (
            MINIMAL + '[loss]\nname = "masked_mnrl"\nhardness_mode = "hard_negatives"\n',
            r"hardness_mode: only with loss \"mnrl\"",
        ),
        (MINIMAL + "[loss]\nhardness_strength = -1.0\n", r"\{'hardness_strength': -1.0\} must be >= 0"),
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
    config = TrainConfig(
        data=DataConfig(catalog="c.jsonl"), sampler=SamplerConfig(leaf=1, sibling=0), loss=LossConfig(name="margin")
    )
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
        (
            '[data]\ndataset = "homedepot"\nqueries = "judgments"\n[experimental.stage2]\nmax_steps = 0\n',
            r"\[stage2\].*max_steps",
        ),
        (
            '[data]\ndataset = "homedepot"\nqueries = "judgments"\n[experimental.stage2]\nsteps = 5\n',
            r"\[stage2\]: unknown key\(s\) \['steps'\]",
        ),
    ],
)
def test_assigned_taxonomy_and_stage2_are_checked(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected):
        load_train_config(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('loss = "mnrl"\n' + MINIMAL, r'run.toml: loss = "mnrl" moved to \[loss\] as name = "mnrl"; move each there'),
        (
            "scale = 40.0\nmini_batch_size = 4\n" + MINIMAL,
            r"scale moved to \[loss\], mini_batch_size moved to \[loss\];",
        ),
        ('batching = "taxonomy"\nmask_margin = 0.0\n' + MINIMAL, r"batching moved to \[experimental\], mask_margin"),
        (MINIMAL + "[stage2]\nmax_steps = 7\n", r"\[stage2\] moved to \[experimental.stage2\]"),
        (MINIMAL + "[distill]\ncandidates = 3\n", r"\[distill\] moved to \[experimental.distill\]"),
    ],
)
def test_a_key_of_the_flat_layout_names_the_table_it_moved_to(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        _load(tmp_path, text)


def test_loss_and_experimental_tables_are_read(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + '[loss]\nname = "cached_mnrl"\nscale = 40.0\nmini_batch_size = 4\n[experimental]\nbatching = "taxonomy"\n'
    )
    config = _load(tmp_path, text)
    assert config.loss == LossConfig(name="cached_mnrl", scale=40.0, mini_batch_size=4)
    assert config.experimental.batching == "taxonomy" and config.experimental.stage2 is None
    with pytest.raises(ConfigError, match=r"\[loss\]: unknown key\(s\) \['temperature'\]; valid keys: .*scale"):
        _load(tmp_path, MINIMAL + "[loss]\ntemperature = 0.05\n")
    with pytest.raises(ConfigError, match=r"\[experimental\]: unknown key\(s\) \['roar'\]"):
        _load(tmp_path, MINIMAL + "[experimental]\nroar = true\n")


def test_every_field_has_a_one_line_help() -> None:
    from dataclasses import fields

    from tbhns_opensearch.training.config import PersonalizationTrainConfig
    from tbhns_opensearch.training.experimental.config import DistillConfig, ExperimentalConfig, PreferenceConfig

    for cls in (TrainConfig, DataConfig, SamplerConfig, LossConfig, PersonalizationTrainConfig):
        for cls_field in fields(cls):
            assert cls_field.metadata.get("help"), f"{cls.__name__}.{cls_field.name}"
    for cls in (ExperimentalConfig, PreferenceConfig, DistillConfig):
        assert all(cls_field.metadata.get("help") for cls_field in fields(cls)), cls.__name__
