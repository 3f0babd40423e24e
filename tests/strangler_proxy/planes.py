"""Start the real traffic planes for tests: a private nginx from the rendered config, and mitmdump with the addon."""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from strangler_proxy.loader import load_route_file
from strangler_proxy.nginx.control import NginxInstance
from strangler_proxy.nginx.render import NginxOptions
from strangler_proxy.spec import RouteTable
from tests.strangler_proxy.upstreams import NamedUpstream, free_port
from tests.waiting import WAIT_TIMEOUT

REPO = Path(__file__).resolve().parents[2]
ADDON = REPO / "strangler_proxy" / "addon.py"


def wait_for_port(port: int, timeout: float = WAIT_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s") from None
            time.sleep(0.05)


@dataclass
class Reply:
    status: int
    served_by: str | None  # X-Upstream-Name: the upstream process that really answered
    upstream_header: str | None  # X-Strangler-Upstream
    route_header: str | None  # X-Strangler-Route
    body: bytes
    headers: dict[str, str]  # lowercased names; the last of repeated headers
    header_list: list[tuple[str, str]]


class Client:
    """Sends raw request targets (no client-side normalisation) over one keep-alive connection."""

    def __init__(self, port: int):
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def send(self, method: str, target: str, headers: dict[str, str | bytes] | None = None,
             body: bytes | None = None) -> Reply:
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                given = {name.lower() for name in headers or {}}
                self.conn.putrequest(method, target, skip_host="host" in given, skip_accept_encoding=True)
                for name, value in (headers or {}).items():
                    self.conn.putheader(name, value)
                self.conn.putheader("Content-Length", str(len(body or b"")))
                self.conn.endheaders(body or b"")
                response = self.conn.getresponse()
                data = response.read()
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt:
                    raise
                continue
            if response.getheader("Connection", "").lower() == "close":
                self.close()
            return Reply(response.status, response.getheader("X-Upstream-Name"),
                         response.getheader("X-Strangler-Upstream"), response.getheader("X-Strangler-Route"), data,
                         {name.lower(): value for name, value in response.getheaders()}, response.getheaders())
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def start_nginx(table: RouteTable, runtime_dir: Path, port: int, *, override_secret: str | None) -> NginxInstance:
    instance = NginxInstance(NginxOptions(runtime_dir=runtime_dir, listen=f"127.0.0.1:{port}",
                                          override_secret=override_secret))
    instance.reload(table)
    wait_for_port(port)
    return instance


def mitmproxy_available() -> bool:
    return ADDON.exists()


def start_mitmdump(route_file: Path, workdir: Path, port: int, *, override_secret: str | None,
                   admin_port: int = 0, env: dict[str, str] | None = None) -> subprocess.Popen:
    """The mitmproxy plane exactly as users start it: `strangler-proxy run` (mitmdump with the addon); `admin_port`
    0: no /metrics and /diffs; `env`: more environment for it."""
    env = {**os.environ, **(env or {}), "STRANGLER_OVERRIDE_SECRET": override_secret or ""}
    args = [
        sys.executable, "-m", "strangler_proxy", "run", "--routes", str(route_file), "--listen-port", str(port),
        "--admin-port", str(admin_port), "--diffs", str(workdir / "diffs.jsonl"),
        "--set", f"confdir={workdir / 'mitmproxy'}",
    ]
    log = open(workdir / "mitmdump.log", "wb")  # noqa: SIM115 - owned by the process for its lifetime
    process = subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port)
        # The port opens before the addon is loaded: wait until a request really goes through.
        deadline = time.monotonic() + WAIT_TIMEOUT
        while True:
            if process.poll() is not None:
                raise TimeoutError("mitmdump exited")
            try:
                if Client(port).send("GET", "/__probe__").status < 500:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("mitmdump does not answer")
            time.sleep(0.1)
    except TimeoutError as exc:
        process.kill()
        log = (workdir / "mitmdump.log").read_text(errors="replace")[-3000:]
        raise AssertionError(f"{exc}; mitmdump log:\n{log}") from None
    return process


def stop_process(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def nginx_exporter(runtime_dir: Path) -> Iterator[str]:
    """`strangler-proxy nginx-metrics` on an nginx instance's runtime dir, as users start it; yields /metrics' URL."""
    admin = free_port()
    exporter = subprocess.Popen([sys.executable, "-m", "strangler_proxy", "nginx-metrics", "--runtime-dir",
                                 str(runtime_dir), "--listen", f"127.0.0.1:{admin}"], cwd=REPO)
    try:
        yield f"http://127.0.0.1:{admin}/metrics"
    finally:
        stop_process(exporter)


@dataclass
class Planes:
    """Both traffic planes started on one route file (see ``both_planes``)."""

    route_file: Path
    table: RouteTable  # the route file as the planes were started on it
    nginx: NginxInstance
    ports: dict[str, int]  # plane ("nginx", "mitmproxy") -> its port
    clients: dict[str, Client]  # a keep-alive client per plane
    admin_port: int | None = None  # the mitmproxy plane's /metrics and /diffs
    upstreams: dict[str, NamedUpstream] | None = None  # with ``planes_on_stubs``
    metrics_urls: dict[str, str] = field(default_factory=dict)  # plane -> /metrics, for tests that scrape them

    def client(self, plane: str) -> Client:
        if plane not in self.clients:
            pytest.skip(f"{plane} plane not available")
        return self.clients[plane]


@contextlib.contextmanager
def both_planes(route_file: Path, workdir: Path, *, override_secret: str | None = None, admin: bool = False,
                mitmproxy_env: dict[str, str] | None = None, require_mitmproxy: bool = False) -> Iterator[Planes]:
    """A private nginx rendered from ``route_file`` and, when available (or ``require_mitmproxy``), `strangler-proxy
    run` on it; stopped, with their clients, on leaving. ``admin``: the mitmproxy plane serves /metrics and /diffs."""
    with contextlib.ExitStack() as stack:
        table = load_route_file(route_file)
        ports = {"nginx": free_port()}
        stack.callback(NginxInstance(NginxOptions(runtime_dir=workdir / "nginx")).stop)  # even if it fails to start
        nginx = start_nginx(table, workdir / "nginx", ports["nginx"], override_secret=override_secret)
        admin_port = None
        if require_mitmproxy or mitmproxy_available():
            ports["mitmproxy"], admin_port = free_port(), free_port() if admin else None
            stack.callback(stop_process, start_mitmdump(route_file, workdir, ports["mitmproxy"],
                                                        override_secret=override_secret, admin_port=admin_port or 0,
                                                        env=mitmproxy_env))
        clients = {plane: Client(port) for plane, port in ports.items()}
        for client in clients.values():
            stack.callback(client.close)
        yield Planes(route_file=route_file, table=table, nginx=nginx, ports=ports, clients=clients,
                     admin_port=admin_port)


@contextlib.contextmanager
def planes_on_stubs(workdir: Path, routes: str, *, names: tuple[str, ...] = ("monolith", "catalog"),
                    fields: dict[str, str] | None = None, **planes_kwargs) -> Iterator[Planes]:
    """Stub upstreams (``NamedUpstream``, one per name) and both planes on ``routes``: a route file template whose
    ``{<name>}`` fields are the upstreams' URLs (and ``fields``, more of them)."""
    with contextlib.ExitStack() as stack:
        upstreams = {name: NamedUpstream(name) for name in names}
        for upstream in upstreams.values():
            stack.callback(upstream.close)
        route_file = workdir / "routes.yaml"
        route_file.write_text(routes.format(**{name: upstream.url for name, upstream in upstreams.items()},
                                            **(fields or {})))
        planes = stack.enter_context(both_planes(route_file, workdir, **planes_kwargs))
        planes.upstreams = upstreams
        yield planes
