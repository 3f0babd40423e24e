"""A small stdlib HTTP server for the dashboard: ``/`` (the page), ``/snapshot.json`` (its data), ``/healthz``.

Snapshots are cached for a few seconds behind a lock, so several open tabs never multiply the probes.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from migrations_plan.dashboard.render import dashboard_html


class SnapshotCache:
    def __init__(self, take: Callable[[], dict], *, max_age: float):
        self._take, self._max_age = take, max_age
        self._lock = threading.Lock()
        self._value: dict | None = None
        self._at = 0.0

    def get(self) -> dict:
        with self._lock:
            if self._value is None or time.monotonic() - self._at >= self._max_age:
                self._value, self._at = self._take(), time.monotonic()
            return self._value


class DashboardServer:
    def __init__(self, *, take_snapshot: Callable[[], dict], host: str = "127.0.0.1", port: int = 0,
                 refresh_seconds: int = 5):
        cache = SnapshotCache(take_snapshot, max_age=max(0.0, refresh_seconds - 0.5))

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                path = self.path.split("?", 1)[0]
                if path == "/":
                    body = dashboard_html(cache.get(), refresh_seconds=refresh_seconds).encode()
                    self._send(200, "text/html; charset=utf-8", body)
                elif path == "/snapshot.json":
                    self._send(200, "application/json", json.dumps(cache.get(), default=str).encode())
                elif path == "/healthz":
                    self._send(200, "application/json", b'{"status":"ok"}')
                else:
                    body = {"error": {"code": "not_found", "message": "Not found.", "details": {}}}
                    self._send(404, "application/json", json.dumps(body).encode())

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args) -> None:  # noqa: A002 - page loads are not worth a log line
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
