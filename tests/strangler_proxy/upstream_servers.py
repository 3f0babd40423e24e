"""Real HTTP servers on ephemeral ports standing in for the monolith and a service in proxy tests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.waiting import WAIT_TIMEOUT, wait_until

# handler(method, path, headers, body) -> (status, headers (dict, or list of pairs to repeat a name), body)
Handler = Callable[[str, str, dict[str, str], bytes], tuple[int, dict[str, str], bytes]]


def json_answer(status: int, payload, **headers: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json", **headers}, json.dumps(payload).encode()


class _QuietServer(ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: tests opening tens of connections at once (shadow bursts) had
    # SYNs dropped and retried a second later, past the client's timeout.
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # Clients that gave up (timeouts under test) close the socket before we answer; that is expected.
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class UpstreamServer:
    """A threaded HTTP/1.1 server that records every request it receives and answers through ``handler``."""

    def __init__(self, name: str, handler: Handler | None = None):
        self.name = name
        self.handler: Handler = handler or (lambda m, p, h, b: json_answer(200, {"upstream": name, "path": p}))
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        server = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                with server._lock:
                    server.requests.append({"method": self.command, "path": self.path, "headers": headers,
                                            "body": body, "at": time.monotonic()})
                status, response_headers, response_body = server.handler(self.command, self.path, headers, body)
                self.send_response(status)
                pairs = response_headers.items() if isinstance(response_headers, dict) else response_headers
                for key, value in pairs:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(response_body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(response_body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

            def log_message(self, format, *args):  # noqa: A002
                pass

        self._server = _QuietServer(("127.0.0.1", 0), RequestHandler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> UpstreamServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def received(self) -> list[dict]:
        with self._lock:
            return list(self.requests)

    def wait_for(self, count: int, timeout: float = WAIT_TIMEOUT) -> list[dict]:
        wait_until(lambda: len(self.received()) >= count, timeout=timeout, interval=0.01,
                   what=lambda: f"{self.name}: {count} requests, got {len(self.received())}")
        return self.received()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
