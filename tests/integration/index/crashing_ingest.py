"""`tbhns ingest` that sends itself SIGKILL (or SIGTERM) at one named point of its work (test harness, not shipped).

    python tests/integration/crashing_ingest.py POINT[:TERM] catalog.jsonl --alias A [--rebuild]

The points, in the order an ingest reaches them (`POINTS`): the new index exists and is empty; the first
bulk chunk is written and the second is being encoded; every document is written, the index not refreshed;
the index is complete and refreshed, the alias not yet moved; the alias moved, the previous index not yet
deleted. Nothing is mocked: the real code runs against the real node up to the kill.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from opensearchpy.client.indices import IndicesClient

from tbhns_opensearch.cli.app import main
from tbhns_opensearch.encoder import Encoder
from tbhns_opensearch.index import ingest
from tbhns_opensearch.index.vector_space import PROBE_TEXTS

SIGNALS = {"KILL": signal.SIGKILL, "TERM": signal.SIGTERM}
_signal = [signal.SIGKILL]


def _die() -> None:
    os.kill(os.getpid(), _signal[0])


def _wrap(owner: Any, name: str, *, before: bool = False, after: bool = False) -> None:
    """Die on the first call of `owner.name`: `before` it runs, or `after`."""
    original = getattr(owner, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if before:
            _die()
        result = original(*args, **kwargs)
        if after:
            _die()
        return result

    setattr(owner, name, wrapped)


def _mid_write() -> None:
    """Die at the second catalog chunk's encoding (the encoder signature's probe texts are no chunk)."""
    original, chunks = Encoder.encode, [0]

    def encode(self: Encoder, texts: Any, *args: Any, **kwargs: Any) -> Any:
        if tuple(texts) != PROBE_TEXTS:
            chunks[0] += 1
            if chunks[0] == 2:
                time.sleep(3)  # the writer thread sends the first chunk meanwhile
                _die()
        return original(self, texts, *args, **kwargs)

    Encoder.encode = encode  # type: ignore[method-assign]


POINTS: dict[str, Callable[[], None]] = {
    "index-created": lambda: _wrap(ingest, "create_index", after=True),
    "mid-write": _mid_write,
    "before-refresh": lambda: _wrap(IndicesClient, "refresh", before=True),
    "before-alias-swap": lambda: _wrap(ingest, "swap_alias", before=True),
    "alias-swapped": lambda: _wrap(IndicesClient, "update_aliases", after=True),
}

if __name__ == "__main__":
    point, _, name = sys.argv[1].partition(":")
    _signal[0] = SIGNALS[name or "KILL"]
    POINTS[point]()
    sys.argv = ["tbhns", "ingest", *sys.argv[2:]]
    main()
