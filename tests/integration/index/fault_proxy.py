"""An HTTP proxy in front of the test node that breaks the Nth bulk request (test harness, not shipped).

    with FaultProxy(node_url, fault="bad-body", on_bulk=2) as proxy:
        client = make_client(OpenSearchConfig(url=proxy.url))

Faults: `500` (an HTTP 500 with an error body), `reset` (the connection closed without an answer), `bad-body`
(HTTP 200 whose body is no JSON). Every other request goes to the node unchanged. Loopback only.
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

FAULTS = ("500", "reset", "bad-body")
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length"}


class FaultProxy:
    """Forwards to `upstream`; the `on_bulk`-th `_bulk` request (1-based) gets `fault` instead."""

    def __init__(self, upstream: str, fault: str, on_bulk: int = 1) -> None:
        if fault not in FAULTS:
            raise ValueError(f"fault {fault!r}: use one of {FAULTS}")
        self.upstream = urlsplit(upstream)
        self.fault = fault
        self.on_bulk = on_bulk
        self.bulks = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FaultProxy:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _faulty(self, path: str) -> bool:
        if "_bulk" not in path:
            return False
        with self._lock:
            self.bulks += 1
            return self.bulks == self.on_bulk

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy._faulty(self.path):
                    return self._fault()
                upstream = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS | {"host"}}
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                answer = upstream.getresponse()
                payload = answer.read()
                self._send(
                    answer.status, payload, [(k, v) for k, v in answer.getheaders() if k.lower() not in _HOP_HEADERS]
                )
                upstream.close()

            def _fault(self) -> None:
                if proxy.fault == "reset":  # RST, no answer at all
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                elif proxy.fault == "500":
                    self._send(
                        500,
                        b'{"error":{"type":"injected_fault","reason":"proxy"},"status":500}',
                        [("Content-Type", "application/json")],
                    )
                else:
                    self._send(200, b"<html>a proxy page, not JSON</html>", [("Content-Type", "application/json")])

            def _send(self, status: int, payload: bytes, headers: list[tuple[str, str]]) -> None:
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

        return Handler
