"""The nginx plane exports what the gates need: `strangler-proxy nginx-metrics` tails real nginx's metrics log."""

from __future__ import annotations

import json
import time

import pytest

from migrations_plan.gates import FAIL, PASS, Observation, gates_evaluate
from migrations_plan.metrics import MetricsUnavailable, Samples, metrics_fetch
from migrations_plan.spec import Gate, Plan
from strangler_proxy.loader import parse_route_text
from strangler_proxy.metrics import ProxyMetrics
from strangler_proxy.nginx.exporter import MetricsLogTail, metrics_line_count
from tests.strangler_proxy.planes import Client, nginx_exporter, start_nginx
from tests.strangler_proxy.upstreams import NamedUpstream, free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.nginx
PRODUCTS, CART = "/api/products/", "/api/cart/"


def route_text(monolith: str, catalog: str, dead: str) -> str:
    return (f"upstreams:\n  monolith: {monolith}\n  catalog: {catalog}\n  ghost: {dead}\nmonolith: monolith\n"
            "routes:\n"
            f"  - {{prefix: {PRODUCTS}, mode: service, service: catalog}}\n"
            f"  - {{prefix: {CART}, mode: service, service: ghost, timeout: 5, fallback: true}}\n")


@pytest.fixture
def nginx_plane(tmp_path):
    monolith, catalog = NamedUpstream("monolith"), NamedUpstream("catalog", status=500)
    dead_port = free_port()  # nothing listens: connect refused, the monolith serves safe methods
    table = parse_route_text(route_text(monolith.url, catalog.url, f"http://127.0.0.1:{dead_port}"),
                             source="metrics.yaml")
    instance = start_nginx(table, tmp_path / "nginx", free_port(), override_secret=None)
    try:
        with nginx_exporter(tmp_path / "nginx") as url:
            yield table, Client(int(instance.options.listen.rsplit(":", 1)[1])), url
    finally:
        instance.stop()
        monolith.close()
        catalog.close()


def scrape(url: str) -> Samples | None:
    try:
        return metrics_fetch(url=url)
    except MetricsUnavailable:
        return None


def test_requests_latency_and_fallbacks_under_the_mitmproxy_planes_names(nginx_plane):
    table, client, url = nginx_plane
    for _ in range(3):
        assert client.send("GET", PRODUCTS + "1/").status == 500  # the service's own 500, no fallback for 5xx
    assert client.send("GET", CART).status == 200  # ghost refuses the connection: the monolith answers
    assert client.send("GET", "/elsewhere/").status == 200
    assert client.send("GET", "/a%2Fb/").status == 400  # refused by nginx itself

    def counted() -> Samples | None:
        samples = scrape(url)
        return samples if samples and samples.total("strangler_proxy_requests_total") >= 5 else None

    samples = wait_until(counted, what="the exporter to count 5 answers")
    requests = {(s["route"], s["upstream"], s["status"]): v
                for _, s, v in samples.select("strangler_proxy_requests_total")}
    assert requests == {(PRODUCTS, "catalog", "500"): 3, (CART, "monolith", "200"): 1,
                        ("default", "monolith", "200"): 1}
    assert samples.total("strangler_proxy_fallbacks_total", route=CART, upstream="ghost", reason="connect") == 1
    assert samples.total("strangler_proxy_upstream_failures_total", upstream="ghost", reason="connect") == 1
    assert samples.total("strangler_proxy_breaker_state", upstream="ghost") == 2  # max_fails=1: down for the window
    assert samples.total("strangler_proxy_rejections_total", reason="status_400") == 1
    assert samples.total("strangler_proxy_request_seconds_count", route=PRODUCTS, upstream="catalog") == 3
    assert samples.total("strangler_proxy_request_seconds_bucket", route=PRODUCTS, upstream="catalog",
                         le="+Inf") == 3


def test_the_error_rate_and_p99_gates_read_the_nginx_plane(nginx_plane):
    table, client, url = nginx_plane
    plan = Plan(name="t", description="", service="catalog", routes=(PRODUCTS,), proxy_metrics=url,
                sync_projects=(), steps=())
    gates = (Gate("max_error_rate_increase", 0.05), Gate("max_p99_seconds", 5.0))
    baseline = wait_until(lambda: scrape(url), what="the exporter to answer")
    for _ in range(4):
        client.send("GET", PRODUCTS)  # catalog answers 500
        client.send("GET", "/elsewhere/")  # monolith answers 200
    wait_until(lambda: (scrape(url) or Samples(rows=())).total("strangler_proxy_requests_total") >= 8,
               what="8 answers counted")
    results = gates_evaluate(gates=gates, observation=Observation(plan=plan, table=table, entered_at=time.time(),
                                                                  baseline=baseline))
    assert [(r.kind, r.status) for r in results] == [("max_error_rate_increase", FAIL), ("max_p99_seconds", PASS)]
    assert results[0].value == pytest.approx(1.0)
    assert "catalog 100.00% of 4 vs monolith 0.00% on all routes" in results[0].detail


def test_a_rotated_log_is_read_from_its_start_and_foreign_lines_are_skipped(tmp_path):
    log = tmp_path / "metrics.log"
    metrics = ProxyMetrics()
    tail = MetricsLogTail(log, metrics)
    assert tail.poll() == 0  # not written yet
    line = '{"route":"/a/","upstream":"m","status":"200","seconds":"0.002","failed":"","tried":"200","connect":"0.0"}'
    log.write_text(line + "\n" + "not json\n" + line[:20])  # the last line is still being written
    assert (tail.poll(), tail.skipped) == (1, 1)
    with log.open("a") as handle:
        handle.write(line[20:] + "\n")
    assert tail.poll() == 1
    log.rename(tmp_path / "metrics.log.1")  # rotated: the new file starts from zero
    log.write_text(line + "\n")
    assert tail.poll() == 1
    assert Samples.parse(metrics.exposition().decode()).total("strangler_proxy_requests_total") == 3
    assert not metrics_line_count(metrics=metrics, line='{"route": "/a/"}')


def test_reads_pinned_by_the_read_your_writes_cookie_count_under_the_mitmproxy_planes_name():
    metrics = ProxyMetrics()
    base = ('{"route":"/k/","upstream":"monolith","status":"200","seconds":"0.001","failed":"","tried":"200",'
            '"connect":"0.000","breaker":"","breaker_state":""')
    for ryw in ("pinned", "", "pinned"):
        assert metrics_line_count(metrics=metrics, line=base + f',"ryw":"{ryw}"}}')
    assert metrics_line_count(metrics=metrics, line=base + "}")  # a line written before the field existed
    samples = Samples.parse(metrics.exposition().decode())
    assert samples.total("strangler_proxy_read_your_writes_total", route="/k/", side="owner", reason="pinned") == 2
    assert samples.total("strangler_proxy_requests_total", route="/k/") == 4


def counted(metrics: ProxyMetrics) -> dict:
    """Every sample but the creation times, by name and labels."""
    rows = Samples.parse(metrics.exposition().decode()).rows
    return {(name, tuple(sorted(labels.items()))): value
            for name, labels, value in rows if not name.endswith("_created")}


def test_a_poll_counts_what_line_by_line_counting_would(tmp_path):
    """The tail counts each distinct line once with its copies; totals, histograms, fallbacks and the breaker gauge
    (what the newest line through the breaker said) come out exactly as counting every line in order."""
    def line(upstream, status, seconds, breaker_state="", failed="", tried="200"):
        return json.dumps({"route": "/a/", "upstream": upstream, "status": status, "seconds": seconds,
                           "failed": failed, "tried": tried, "connect": "0.000", "breaker": "cat",
                           "breaker_state": breaker_state}, separators=(",", ":"))
    closed, tripped = line("cat", "200", "0.001", "closed"), line("monolith", "200", "0.012", "tripped", tried="504")
    skipped, refused = line("monolith", "200", "0.002", "open"), line("", "400", "0.000")
    lines = [closed] * 5 + [tripped, skipped, skipped, closed, line("cat", "200", "0.003", "closed")] * 3 \
        + [skipped, refused, refused] + [closed] * 2 + [tripped]  # the newest breaker line says: tripped (open)
    log = tmp_path / "metrics.log"
    log.write_text("".join(f"{x}\n" for x in lines))
    batched, one_by_one = ProxyMetrics(), ProxyMetrics()
    assert MetricsLogTail(log, batched).poll() == len(lines)
    for x in lines:
        assert metrics_line_count(metrics=one_by_one, line=x)
    assert counted(batched) == pytest.approx(counted(one_by_one))
    samples = Samples.parse(batched.exposition().decode())
    assert samples.total("strangler_proxy_breaker_state", upstream="cat") == 2
    assert samples.total("strangler_proxy_requests_total") == len(lines) - 2
    log.write_text(closed + "\n")  # a shorter file: read from the start; the gauge follows the newest line again
    assert MetricsLogTail(log, batched).poll() == 1
    assert Samples.parse(batched.exposition().decode()).total("strangler_proxy_breaker_state", upstream="cat") == 0
