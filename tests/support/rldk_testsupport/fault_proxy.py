"""A loopback HTTP proxy that applies a request upstream and then loses the answer.

``FaultProxy(upstream_uri)`` forwards every request to a real server (an MLflow server on
127.0.0.1). For a request whose path contains one of ``faults``' keys, the first ``n`` times it
forwards the request, waits for the upstream answer (so the server *has applied* it), and then
either drops the client connection without a byte (``"drop"``) or answers 500 (``"500"``): the
client never hears that its request succeeded. ``.uri`` is the proxy's address, ``.seen`` counts
requests per path.
"""

from __future__ import annotations

import http.client
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Mapping
from urllib.parse import urlsplit

_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}


class FaultProxy:
    def __init__(self, upstream_uri: str, faults: Mapping[str, tuple[str, int]]) -> None:
        parts = urlsplit(upstream_uri)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.faults = {path: [kind, times] for path, (kind, times) in faults.items()}
        self.seen: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
                upstream = http.client.HTTPConnection(*proxy._upstream, timeout=60)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    payload = response.read()
                finally:
                    upstream.close()
                fault = proxy._take_fault(self.path)
                if fault == "drop":  # applied upstream; the client hears nothing
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                status, payload = (500, b'{"error_code": "INTERNAL_ERROR"}') if fault == "500" else (response.status, payload)
                self.send_response(status)
                for key, value in response.getheaders():
                    if key.lower() not in _HOP_HEADERS:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _relay

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.uri = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()

    def _take_fault(self, path: str) -> str | None:
        with self._lock:
            for key, fault in self.faults.items():
                if key in path:
                    self.seen[key] += 1
                    if fault[1] > 0:
                        fault[1] -= 1
                        self.injected[key] += 1
                        return fault[0]
        return None

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
