"""`tbhns ingest --encode-workers N` / `--device a,b`: a bad value is one line naming the fix, before any node
starts."""

from __future__ import annotations

import pytest

from tests.helpers import FIXTURES


@pytest.mark.parametrize(
    ("option", "fix"),
    [
        (["--encode-workers", "0"], "pass 1 to encode in this process or N > 1 for N processes"),
        (["--device", "cuda0,cuda1"], "'cuda0' is not a device; pass one device (cpu, cuda, cuda:1) or a comma list"),
    ],
)
def test_a_bad_worker_option_is_one_line_and_starts_no_node(monkeypatch, capsys, option: list[str], fix: str) -> None:
    from tbhns_opensearch.cli.app import main

    def no_node(*_: object, **__: object) -> None:
        raise AssertionError("a node was asked for before the options were checked")

    monkeypatch.setattr("tbhns_opensearch.cli.ingest.cluster_for", no_node)
    catalog = str(FIXTURES / "toys_products.jsonl")
    monkeypatch.setattr("sys.argv", ["tbhns", "ingest", catalog, "--alias", "never", *option])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fix in lines[0], lines
