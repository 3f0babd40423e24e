"""The nginx plane's breaker on real nginx: a hung service behind a fallback route costs one timeout per
breaker window, not one per request; the answers, the access log and the exporter's /metrics say the breaker is
open."""

from __future__ import annotations

import contextlib
import time

import pytest

from migrations_plan.metrics import MetricsUnavailable, Samples, metrics_fetch
from strangler_proxy.loader import parse_route_text
from strangler_proxy.nginx.control import NginxInstance
from strangler_proxy.nginx.render import NginxOptions
from tests.strangler_proxy.planes import Client, nginx_exporter, start_nginx
from tests.strangler_proxy.upstreams import NamedUpstream, free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.nginx

ROUTES = """\
upstreams:
  monolith: {monolith}
  catalog: {catalog}
monolith: monolith
settings:
  breaker_window: {window}
  access_log: unbuffered
routes:
  - prefix: /api/products/
    mode: service
    service: catalog
    fallback: true
    timeout: 2
"""
HUNG = 15.0  # seconds the hung service sits on a request: far past the route's 2 s timeout


@contextlib.contextmanager
def plane(tmp_path, *, window: int):
    with contextlib.ExitStack() as stack:
        monolith, catalog = NamedUpstream("monolith"), NamedUpstream("catalog", delay=HUNG)
        stack.callback(monolith.close)
        stack.callback(catalog.close)
        table = parse_route_text(ROUTES.format(monolith=monolith.url, catalog=catalog.url, window=window),
                                 source="breaker.yaml")
        port = free_port()
        stack.callback(NginxInstance(NginxOptions(runtime_dir=tmp_path / "nginx")).stop)
        start_nginx(table, tmp_path / "nginx", port, override_secret=None)
        client = Client(port)
        stack.callback(client.close)
        yield client, monolith, catalog


@pytest.mark.slow
def test_a_hung_service_costs_one_timeout_per_window(tmp_path):
    with plane(tmp_path, window=3600) as (client, monolith, catalog):
        replies = [client.send("GET", f"/api/products/?n={n}") for n in range(8)]
        assert [(r.status, r.served_by, r.upstream_header) for r in replies] == [(200, "monolith", "monolith")] * 8
        # One request waited for the hung service; the seven after it were never sent there.
        assert len(catalog.requests) == 1 and len(monolith.requests) == 8
        assert [r.headers.get("x-strangler-breaker") for r in replies] == [None] + ["open"] * 7
        post = client.send("POST", "/api/products/", body=b"{}")  # unsafe methods never fall back
        assert post.status == 504
        log = tmp_path / "nginx" / "access.log"
        wait_until(lambda: log.read_text().count("breaker=open") == 7, what="seven breaker=open log lines")


def breaker_metrics(url: str, *, answers: int) -> Samples | None:
    """/metrics once the exporter has counted `answers` requests (nginx flushes the log within a second)."""
    try:
        samples = metrics_fetch(url=url)
    except MetricsUnavailable:  # the exporter is still starting
        return None
    return samples if samples.total("strangler_proxy_requests_total") >= answers else None


@pytest.mark.slow
def test_the_service_is_tried_again_after_the_window(tmp_path):
    with plane(tmp_path, window=2) as (client, _monolith, catalog), nginx_exporter(tmp_path / "nginx") as url:
        assert client.send("GET", "/api/products/").served_by == "monolith"  # the timeout opens the breaker
        samples = wait_until(lambda: breaker_metrics(url, answers=1), what="the timed-out request counted")
        assert samples.total("strangler_proxy_breaker_state", upstream="catalog") == 2
        assert samples.total("strangler_proxy_fallbacks_total", upstream="catalog", reason="timeout") == 1
        assert samples.total("strangler_proxy_upstream_failures_total", upstream="catalog", reason="timeout") == 1
        assert client.send("GET", "/api/products/").headers.get("x-strangler-breaker") == "open"
        samples = wait_until(lambda: breaker_metrics(url, answers=2), what="the skipped request counted")
        assert samples.total("strangler_proxy_breaker_state", upstream="catalog") == 2
        assert samples.total("strangler_proxy_fallbacks_total", upstream="catalog", reason="breaker_open") == 1
        catalog.delay = 0  # the service recovers
        time.sleep(3.5)  # past the window (nginx counts whole seconds) it sends the service a request again
        reply = client.send("GET", "/api/products/")
        assert (reply.served_by, reply.upstream_header, reply.headers.get("x-strangler-breaker")) == (
            "catalog", "catalog", None)
        assert len(catalog.requests) == 2
        samples = wait_until(lambda: breaker_metrics(url, answers=3), what="the service's answer counted")
        assert samples.total("strangler_proxy_breaker_state", upstream="catalog") == 0
        assert samples.total("strangler_proxy_fallbacks_total", upstream="catalog") == 2  # none for the answer
