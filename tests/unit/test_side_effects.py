"""Library calls leave the process as they found it: environment, csv limits, library log levels."""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

import pytest

from tbhns_opensearch.catalog import read_catalog
from tbhns_opensearch.encoder import Encoder


def test_loading_the_default_encoder_leaves_the_hub_settings_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert Encoder("all-MiniLM-L6-v2").dimension == 384
    assert "HF_HUB_OFFLINE" not in os.environ  # a hub encoder can still load later in this process


def test_reading_a_csv_catalog_puts_the_csv_field_limit_back(tmp_path: Path) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text("id,title,description\n1,Claw hammer," + "x" * 200_000 + "\n")
    before = csv.field_size_limit()
    (product,) = list(read_catalog(path))
    assert len(product.description) == 200_000
    assert csv.field_size_limit() == before


def test_training_quiets_library_logs_only_while_it_runs() -> None:
    from transformers.utils import logging as hf_logging

    from tbhns_opensearch.training.stage import quiet_libraries

    library = logging.getLogger("sentence_transformers")
    library.setLevel(logging.INFO)
    before = hf_logging.get_verbosity()
    with quiet_libraries():
        assert library.level == logging.ERROR
    assert (library.level, hf_logging.get_verbosity()) == (logging.INFO, before)
