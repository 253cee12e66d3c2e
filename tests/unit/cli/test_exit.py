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
    assert capsys.readouterr().err.strip().splitlines() == [
        "interrupted: nothing half-done was published; rerun the command to finish"
    ]


def test_sigterm_is_exit_143_with_one_line(monkeypatch, capsys) -> None:
    import os
    import signal

    from tbhns_opensearch.cli.app import main

    def terminated(*_: object, **__: object) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # the handler main() installs turns it into a clean exit

    previous = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr("tbhns_opensearch.catalog.read_catalog", terminated)
    monkeypatch.setattr("sys.argv", ["tbhns", "ingest", "anything.jsonl"])
    try:
        with pytest.raises(SystemExit) as exit_info:
            main()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert exit_info.value.code == 143
    assert capsys.readouterr().err.strip().splitlines() == [
        "terminated: nothing half-done was published; rerun the command to finish"
    ]
