"""Diff endpoint for the nginx plane: receives nginx's mirrored copies and diffs both upstreams' answers.

nginx's ``mirror`` discards the mirror's response and never shows it the primary's, so the copy only says
which route it belongs to and which upstreams to compare (``X-Strangler-Mirror-Route`` / ``-Primary`` /
``-Shadow``, request target = the client's ``$request_uri``). The endpoint answers 202 at once (nginx waits
for mirror subrequests before finishing a keep-alive request), then fetches the primary, the shadow and,
for noise learning, the monolith again, and diffs them with the same code as the mitmproxy plane.

Only safe methods are compared: fetching the primary again would repeat a write.

    python -m strangler_proxy.diff_endpoint --routes strangler_proxy/routes.yaml [--listen 127.0.0.1:8790]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client.exposition import CONTENT_TYPE_LATEST

from servicekit.cli_parser import OneLineErrorParser
from strangler_proxy.fetch import HOP_BY_HOP
from strangler_proxy.identity import IdentityResolver, shadow_identity
from strangler_proxy.loader import RouteFileError, load_route_file, route_file_path
from strangler_proxy.metrics import ProxyMetrics
from strangler_proxy.noise import noise_file_for, noise_registry_for
from strangler_proxy.shadow import SAFE_METHODS, DiffStore, ShadowJob, ShadowRunner
from strangler_proxy.spec import (
    MIRROR_PRIMARY_HEADER,
    MIRROR_ROUTE_HEADER,
    MIRROR_SHADOW_HEADER,
    RouteTable,
)

logger = logging.getLogger("strangler_proxy.diff_endpoint")

_MIRROR_HEADERS = {MIRROR_ROUTE_HEADER.lower(), MIRROR_PRIMARY_HEADER.lower(), MIRROR_SHADOW_HEADER.lower()}
MAX_BODY = 10 * 1024 * 1024


class DiffEndpoint:
    """An HTTP server (stdlib, threaded) in front of a ShadowRunner; ``GET /diffs`` and ``/metrics`` report."""

    def __init__(self, *, table: RouteTable, host: str = "127.0.0.1", port: int = 0, store: DiffStore | None = None,
                 workers: int = 4):
        self.table = table
        self.store = store or DiffStore()
        noise_path = noise_file_for(settings=table.settings.noise, route_file=table.source,
                                    samples_path=self.store.samples_path)
        self.store.noise = noise_registry_for(settings=table.settings.noise, path=noise_path, current=self.store.noise)
        self.metrics = ProxyMetrics()
        # copies to identity upstreams carry the signed identity a client request would (as on the mitmproxy plane)
        self.runner = ShadowRunner(store=self.store, max_workers=workers, on_compared=self._compared,
                                   on_error=self._failed, identity=IdentityResolver())
        self.skipped: dict[str, int] = {}
        self._lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive with nginx's `keepalive` upstream pool

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    self._answer(413, {"error": {"code": "body_too_large", "message": "Body too large.",
                                                 "details": {}}})
                    self.close_connection = True
                    return
                body = self.rfile.read(length) if length else b""
                if self.command == "GET" and MIRROR_ROUTE_HEADER not in self.headers:
                    if self.path == "/diffs":
                        self._answer(200, endpoint.summary())
                        return
                    if self.path == "/metrics":
                        self._send(200, CONTENT_TYPE_LATEST, endpoint.metrics.exposition())
                        return
                status, payload = endpoint.accept(self.command, self.path, list(self.headers.items()), body)
                self._answer(status, payload)

            do_GET = do_HEAD = do_OPTIONS = do_POST = do_PUT = do_PATCH = do_DELETE = _any

            def _answer(self, status: int, payload: dict) -> None:
                self._send(status, "application/json", json.dumps(payload).encode())

            def _send(self, status: int, content_type: str, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def log_message(self, format: str, *args) -> None:  # noqa: A002 - one line per mirror is noise
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def _compared(self, job: ShadowJob, result) -> None:
        self.metrics.shadow_comparisons.labels(route=job.route).inc()
        if not result.equal:
            self.metrics.shadow_diffs.labels(route=job.route).inc()

    def _failed(self, job: ShadowJob, reason: str) -> None:
        self.metrics.shadow_errors.labels(route=job.route, reason=reason).inc()

    def _skip(self, reason: str) -> None:
        with self._lock:
            self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def accept(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> tuple[int, dict]:
        """Validate one mirrored copy and queue its comparison; returns (status, JSON body) for nginx."""
        lowered = {name.lower(): value for name, value in headers}
        label = lowered.get(MIRROR_ROUTE_HEADER.lower(), "")
        primary = lowered.get(MIRROR_PRIMARY_HEADER.lower(), "")
        shadow = lowered.get(MIRROR_SHADOW_HEADER.lower(), "")
        table = self.table
        route = next((r for r in table.routes if r.label == label), None)
        if route is None or primary not in table.upstreams or shadow not in table.upstreams or primary == shadow:
            self._skip("bad_headers")
            return 400, {"error": {"code": "bad_mirror", "message": "Unknown route or upstreams in mirror headers.",
                                   "details": {"route": label, "primary": primary, "shadow": shadow}}}
        if method not in SAFE_METHODS:
            self._skip("unsafe_method")
            return 202, {"queued": False, "reason": "unsafe methods are not compared (the primary would write twice)"}
        # nginx blanks a client's identity header on the mirror; dropped here too (the endpoint may be reached
        # otherwise): only a signed identity from the monolith goes to a service
        dropped = {"host", "content-length", "accept-encoding", table.settings.identity.header.lower()}
        forwarded = tuple(
            (name, value) for name, value in headers
            if name.lower() not in _MIRROR_HEADERS and name.lower() not in HOP_BY_HOP and name.lower() not in dropped
        )
        job = ShadowJob(
            route=route.label, rules=route.diff, method=method, path=target, headers=forwarded, body=body or None,
            monolith=table.monolith, primary=primary, shadow=shadow,
            upstream_urls={name: u.url for name, u in table.upstreams.items()},
            request_id=lowered.get("x-request-id"), timeout=route.timeout, host=lowered.get("host"),
            identity=shadow_identity(table),
        )
        queued = self.runner.submit(job)
        return 202, {"queued": queued}

    def summary(self) -> dict:
        summary = self.store.summary()
        with self._lock:
            summary["skipped"] = dict(self.skipped)
        return summary

    def start(self) -> DiffEndpoint:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="strangler-diff-endpoint", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.5)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.runner.shutdown(wait=False)
        self.store.noise.flush()


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="python -m strangler_proxy.diff_endpoint", description=__doc__.splitlines()[0])
    parser.add_argument("--routes", metavar="FILE", default=None)
    parser.add_argument("--listen", default=None, metavar="HOST:PORT",
                        help="default: settings.diff_endpoint of the route file")
    parser.add_argument("--diffs", default="var/proxy/diffs-nginx.jsonl", metavar="PATH",
                        help="JSON-lines sample of differences; learned noise is kept beside it (.noise.json) "
                        "unless the route file's settings.noise.file says where")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        table = load_route_file(route_file_path(args.routes))
    except RouteFileError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    host, _, port = (args.listen or table.settings.diff_endpoint).rpartition(":")
    endpoint = DiffEndpoint(table=table, host=host or "127.0.0.1", port=int(port),
                            store=DiffStore(samples_path=args.diffs or None))
    print(f"diff endpoint on http://{host}:{endpoint.port}/ (GET /diffs, /metrics)", flush=True)
    try:
        endpoint.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        endpoint.runner.shutdown(wait=False)
        endpoint.store.noise.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
