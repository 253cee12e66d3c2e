"""Serve an ASGI app with uvicorn in a background thread on a free loopback port (benchmarks, tests, notebooks).

Example:
    >>> from tbhns_opensearch.api import ServeSettings, create_app
    >>> from tbhns_opensearch.config import OpenSearchConfig
    >>> with running_app(create_app(ServeSettings(OpenSearchConfig(), warm=False))) as url:  # doctest: +SKIP
    ...     url
    'http://127.0.0.1:41234'
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


@contextmanager
def running_app(app: Any, start_timeout_s: float = 30.0) -> Iterator[str]:  # Any: an ASGI application
    """Serve `app` until the block ends; yield its base URL (http://127.0.0.1:PORT)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError(f"the app did not start on port {port} within {start_timeout_s:.0f} s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
