"""The package's layers (pyproject.toml [tool.importlinter]): every import points down the data flow."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from tests.helpers import ROOT


def test_no_package_imports_one_above_it() -> None:
    done = subprocess.run(
        [Path(sys.executable).parent / "lint-imports", "--no-cache"], cwd=ROOT, capture_output=True, text=True
    )
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert done.returncode == 0, done.stdout[-3000:]
    assert f"{len(contracts)} kept, 0 broken" in done.stdout
