"""The entry point's exit codes: one line on stderr, never a traceback."""

from __future__ import annotations

import pytest


def test_ctrl_c_is_exit_130_with_one_line(monkeypatch, capsys) -> None:
    from tbhns_opensearch.cli.app import main

    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("tbhns_opensearch.catalog.read_catalog", interrupted)
    monkeypatch.setattr("sys.argv", ["tbhns", "ingest", "anything.jsonl"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 130
    assert capsys.readouterr().err.strip().splitlines() == ["interrupted: nothing half-done was published; rerun the command to finish"]

