"""``/metrics``, ``/health`` and ``/ready`` for every journeybus process.

``/health`` answers 200 while the process runs (liveness). ``/ready`` answers
200 once the process is connected, has its partitions and is caught up
(whatever the process's readiness check says), else 503 with the reason.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger(__name__)

ReadyCheck = Callable[[], tuple[bool, str]]


class _Handler(BaseHTTPRequestHandler):
    ready: ReadyCheck = staticmethod(lambda: (True, "ok"))  # type: ignore[assignment]

    def do_GET(self) -> None:
        if self.path == "/metrics":
            self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
        elif self.path == "/health":
            self._send(200, b"ok\n")
        elif self.path == "/ready":
            ok, reason = self.ready()
            self._send(200 if ok else 503, (reason + "\n").encode())
        else:
            self._send(404, b"not found\n")

    def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args: object) -> None:  # quiet: scraped every few s
        log.debug(fmt, *args)


def serve_health(
    port: int, ready: ReadyCheck | None = None, host: str = "127.0.0.1"
) -> ThreadingHTTPServer:
    """Serve the endpoints on ``host:port`` (0 = a free port) in a daemon thread."""
    handler = type("Handler", (_Handler,), {"ready": staticmethod(ready or (lambda: (True, "ok")))})
    server = ThreadingHTTPServer((host, port), handler)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
