"""Real upstream processes for traffic-plane tests: tiny HTTP servers that answer with their own name."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _NameHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        server: NamedUpstream = self.server.owner  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        record = {
            "upstream": server.name,
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("utf-8", "replace"),
        }
        server.record(record)
        if server.delay:
            time.sleep(server.delay)
        status = server.status
        payload = json.dumps(record).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Upstream-Name", server.name)
        for name, value in server.answer_headers.items():
            self.send_header(name, value)
        if self.headers.get("X-Request-ID"):  # echoed like servicekit's middleware does
            self.send_header("X-Request-ID", self.headers["X-Request-ID"])
        self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_PROPFIND = _answer

    def log_message(self, format, *args):  # noqa: A002 - keep test output quiet
        pass


class NamedUpstream:
    """A threaded HTTP server on a free port; every response body is JSON naming this upstream."""

    def __init__(self, name: str, *, status: int = 200, delay: float = 0.0):
        self.name = name
        self.status = status
        self.delay = delay  # seconds to wait before answering (timeouts)
        self.requests: list[dict] = []
        self.answer_headers: dict[str, str] = {}  # sent on every answer (tests change it between requests)
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _NameHandler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"upstream-{name}", daemon=True)
        self._thread.start()

    def record(self, request: dict) -> None:
        with self._lock:
            self.requests.append(request)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
