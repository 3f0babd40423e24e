"""A real `strangler-proxy run` (mitmdump + the addon) for end-to-end tests, driven through its admin port."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.waiting import REQUEST_TIMEOUT, WAIT_TIMEOUT

from .upstream_servers import free_port

ROOT = Path(__file__).resolve().parents[2]

HEAD = """\
upstreams:
  monolith: {monolith}
  catalog: {catalog}
  orders: {dead}
monolith: monolith
settings:
  max_body_bytes: 1000
routes:
"""
DEAD_SERVICE = """\
  - prefix: /api/orders/
    mode: service
    service: orders
    fallback: true
    timeout: 2
"""
SERVICE_WITH_FALLBACK = """\
  - prefix: /api/products/
    mode: {mode}
    service: catalog
    fallback: true
    timeout: 2
"""
SHADOWED = """\
  - prefix: /api/categories/
    mode: shadow
    service: catalog
    diff:
      ignore: ["$.path"]
"""


class Proxy:
    def __init__(self, tmp: Path, monolith, catalog, *, breaker_cooldown: float = 0.5):
        # monolith, catalog: anything with .url (test servers or live projects)
        self.monolith, self.catalog = monolith, catalog
        self.routes = tmp / "routes.yaml"
        self.record_path = tmp / "record.jsonl"
        self.log_path = tmp / "mitmdump.log"
        self.port, self.admin_port, self.dead_port = free_port(), free_port(), free_port()
        self.write_routes(self.routes_text(mode="monolith"))
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "strangler_proxy", "run", "--routes", str(self.routes),
             "--listen-port", str(self.port), "--admin-port", str(self.admin_port),
             "--diffs", str(tmp / "diffs.jsonl"), "--record", str(tmp / "record.jsonl"),
             "--set", "strangler_breaker_failures=3", "--set", f"strangler_breaker_cooldown={breaker_cooldown}",
             "--set", "strangler_reload_interval=0.1", "--set", "termlog_verbosity=info"],
            cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        deadline = time.monotonic() + WAIT_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"mitmdump exited:\n{self.log()}")
            try:
                self.admin("/diffs")
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"mitmdump did not start:\n{self.log()}")

    def routes_text(self, *, mode: str = "service", extra: str = "") -> str:
        return (HEAD.format(monolith=self.monolith.url, catalog=self.catalog.url, dead=f"http://127.0.0.1:{self.dead_port}")
                + SERVICE_WITH_FALLBACK.format(mode=mode) + SHADOWED + extra)

    def write_routes(self, text: str) -> None:
        # Editors and config management replace files; write-then-rename is what they do.
        tmp = self.routes.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.routes)

    def install(self, text: str, timeout: float = WAIT_TIMEOUT) -> None:
        self.write_routes(text)
        digest = hashlib.sha256(text.encode()).hexdigest()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.admin("/diffs")["route_table"]["digest"] == digest:
                return
            time.sleep(0.05)
        raise AssertionError(f"route file not reloaded:\n{self.log()}")

    def admin(self, path: str):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=REQUEST_TIMEOUT) as response:
            body = response.read()
        return json.loads(body) if path == "/diffs" else body.decode()

    def request(self, method: str, path: str, *, body: bytes | None = None, headers: dict | None = None,
                timeout: float = REQUEST_TIMEOUT):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers={"Host": f"localhost:{self.port}", **(headers or {})})
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()
