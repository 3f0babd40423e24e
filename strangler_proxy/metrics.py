"""Prometheus metrics of the mitmproxy plane and the admin HTTP server that serves them (/metrics, /diffs).

Each ``ProxyMetrics`` owns its registry, so several proxies (or tests) in one process never share counters.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from strangler_proxy.breaker import STATE_VALUES, BreakerState

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ProxyMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "strangler_proxy_requests_total", "Requests answered, by route, upstream that answered and status.",
            ["route", "upstream", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "strangler_proxy_request_seconds", "Time from request received to response ready.",
            ["route", "upstream"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.rejections = Counter(
            "strangler_proxy_rejections_total", "Requests refused by the proxy itself, by reason.",
            ["reason"], registry=self.registry,
        )
        self.fallbacks = Counter(
            "strangler_proxy_fallbacks_total", "Requests served by the monolith because the service failed.",
            ["route", "upstream", "reason"], registry=self.registry,
        )
        self.upstream_failures = Counter(
            "strangler_proxy_upstream_failures_total", "Connect errors, timeouts and 5xx from an upstream.",
            ["upstream", "reason"], registry=self.registry,
        )
        self.shadow_comparisons = Counter(
            "strangler_proxy_shadow_comparisons_total", "Shadow comparisons completed.", ["route"],
            registry=self.registry,
        )
        self.shadow_diffs = Counter(
            "strangler_proxy_shadow_diffs_total", "Shadow comparisons that found a difference.", ["route"],
            registry=self.registry,
        )
        self.shadow_errors = Counter(
            "strangler_proxy_shadow_errors_total", "Shadow requests that failed or were dropped.", ["route", "reason"],
            registry=self.registry,
        )
        self.breaker_state = Gauge(
            "strangler_proxy_breaker_state", "Circuit breaker state per upstream: 0 closed, 1 half-open, 2 open.",
            ["upstream"], registry=self.registry,
        )
        self.hook_errors = Counter(
            "strangler_proxy_hook_errors_total",
            "Exceptions inside an addon hook; the request was answered 5xx/400 by the proxy, never forwarded.",
            ["hook", "error"], registry=self.registry,
        )
        self.write_holds = Counter(
            "strangler_proxy_write_holds_total",
            "Writes held for an ownership flip (route `hold`), by outcome: held (answered 503) or queued (went on).",
            ["route", "outcome"], registry=self.registry,
        )
        self.write_resends = Counter(
            "strangler_proxy_write_resends_total",
            "Writes refused 409 not_owner by an ownership flip and sent again once the hold lifted (flip_retry).",
            ["route"], registry=self.registry,
        )
        self.write_hold_seconds = Histogram(
            "strangler_proxy_write_hold_seconds", "How long a route's writes were held (route file hold to lift).",
            ["route"], buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300), registry=self.registry,
        )
        self.read_your_writes = Counter(
            "strangler_proxy_read_your_writes_total",
            "Reads of a client with a recent write on a read-your-writes route, by the side that served them: "
            "owner (reason pinned: no positions to check, or the nginx plane's window; behind: the follower had not "
            "applied them) or follower (caught_up: it had; mitmproxy plane only).",
            ["route", "side", "reason"], registry=self.registry,
        )
        self.route_table_reloads = Counter(
            "strangler_proxy_route_table_reloads_total", "Route file reloads, by result (ok, rejected).",
            ["result"], registry=self.registry,
        )

        # labels() hashes and locks on every call; the proxy answers few distinct label sets, so keep the children.
        self._answered: dict[tuple[str, str, str], tuple] = {}
        self._breakers: dict[str, object] = {}  # upstream -> its breaker_state gauge child

    def request_answered(self, *, route: str, upstream: str, status: str, seconds: float | None = None,
                         count: int = 1) -> None:
        """Count `count` answers alike and, when given, observe their latency (per route and upstream)."""
        key = (route, upstream, status)
        children = self._answered.get(key)
        if children is None:
            children = self._answered[key] = (
                self.requests.labels(route=route, upstream=upstream, status=status),
                self.latency.labels(route=route, upstream=upstream),
            )
        children[0].inc(count)
        if seconds is not None:
            observe = children[1].observe
            for _ in range(count):  # the histogram has no weighted observe
                observe(seconds)

    def breaker_changed(self, upstream: str, state: BreakerState) -> None:
        # the nginx exporter calls this for every line through a breaker: labels() (a lock, label checks) once
        gauge = self._breakers.get(upstream)
        if gauge is None:
            gauge = self._breakers[upstream] = self.breaker_state.labels(upstream=upstream)
        gauge.set(STATE_VALUES[state])

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class AdminServer:
    """Serves ``/metrics`` (Prometheus text) and ``/diffs`` (JSON summary of shadow comparisons) on its own port."""

    def __init__(self, *, metrics: ProxyMetrics, diff_summary: Callable[[], dict], host: str = "127.0.0.1",
                 port: int = 0):
        metrics_ref, summary_ref = metrics, diff_summary

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, metrics_ref.exposition())
                elif path == "/diffs":
                    self._send(200, "application/json", json.dumps(summary_ref(), default=str).encode())
                elif path == "/healthz":
                    self._send(200, "application/json", b'{"status":"ok"}')
                else:
                    body = {"error": {"code": "not_found", "message": "Not found.", "details": {}}}
                    self._send(404, "application/json", json.dumps(body).encode())

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args) -> None:  # noqa: A002 - scrapes are not worth a log line
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> AdminServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="strangler-admin", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
