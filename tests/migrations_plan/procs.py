"""Real processes and servers for control-plane tests: a switchable JSON upstream and `strangler-proxy run`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, *, timeout: float = 30.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"process exited ({process.returncode}) before {url} answered")
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer within {timeout:g}s")
        time.sleep(0.1)


def handler_answer(handler: BaseHTTPRequestHandler, status: int, content_type: str, body: bytes) -> None:
    """Send one complete answer from a request handler (keep-alive safe: it always has a Content-Length)."""
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class BackgroundServer:
    """A threaded HTTP server on a free local port, serving ``handler`` from a daemon thread until ``stop``."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class JsonUpstream(BackgroundServer):
    """A threaded HTTP server answering JSON `{"upstream": name, "path": ...}` with a status that tests switch."""

    def __init__(self, name: str, *, status: int = 200):
        self.name, self.status, self.hits = name, status, 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                owner.hits += 1
                status = 200 if self.path == "/healthz" else owner.status
                body = json.dumps({"upstream": owner.name, "path": self.path}).encode()
                handler_answer(self, status, "application/json", body)

            def log_message(self, format, *args):  # noqa: A002 - quiet tests
                pass

        super().__init__(Handler)


def start_proxy(route_file: Path, workdir: Path, *, port: int, admin_port: int) -> subprocess.Popen:
    """The mitmproxy plane exactly as users start it (`python -m strangler_proxy run`), ready for traffic."""
    log = open(workdir / "proxy.log", "wb")  # noqa: SIM115 - owned by the process for its lifetime
    process = subprocess.Popen(
        [sys.executable, "-m", "strangler_proxy", "run", "--routes", str(route_file), "--listen-port", str(port),
         "--admin-port", str(admin_port), "--diffs", str(workdir / "diffs.jsonl"),
         "--set", f"confdir={workdir / 'mitmproxy'}"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{admin_port}/healthz", process=process)
        wait_http(f"http://127.0.0.1:{port}/healthz", process=process)
    except AssertionError:
        stop(process)
        raise AssertionError((workdir / "proxy.log").read_text(errors="replace")[-3000:]) from None
    return process


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, 15)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


def plan_cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "migrations_plan", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
