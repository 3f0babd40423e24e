"""Gates read the proxy's own metrics (its admin server) over the window since the step began; no data = unknown."""

from __future__ import annotations

import time

import pytest

from migrations_plan.gates import FAIL, PASS, UNKNOWN, WAITING, Observation, gates_evaluate, gates_pass
from migrations_plan.metrics import Samples, histogram_quantile, metrics_fetch
from migrations_plan.spec import Gate, Plan
from strangler_proxy.loader import load_route_file
from strangler_proxy.metrics import AdminServer, ProxyMetrics

from .conftest import write_routes
from .procs import JsonUpstream

PRODUCTS, CATEGORIES = "/api/products/", "/api/categories/"


@pytest.fixture
def proxy_admin():
    metrics = ProxyMetrics()
    server = AdminServer(metrics=metrics, diff_summary=dict).start()
    yield metrics, f"http://127.0.0.1:{server.port}/metrics"
    server.stop()


def plan_for(metrics_url: str, sync_projects: tuple[str, ...] = ()) -> Plan:
    return Plan(name="t", description="", service="catalog", routes=(PRODUCTS, CATEGORIES),
                proxy_metrics=metrics_url, sync_projects=sync_projects, steps=())


def evaluate(plan: Plan, routes_file, *gates: Gate, baseline: Samples | None = None, entered_at: float | None = None):
    observation = Observation(plan=plan, table=load_route_file(routes_file), entered_at=entered_at or time.time(),
                              baseline=baseline or Samples(rows=()))
    return gates_evaluate(gates=gates, observation=observation)


def served(metrics: ProxyMetrics, route: str, upstream: str, status: int, seconds: float, n: int = 1) -> None:
    for _ in range(n):  # what the addon records per answered request
        metrics.requests.labels(route=route, upstream=upstream, status=str(status)).inc()
        metrics.latency.labels(route=route, upstream=upstream).observe(seconds)


def test_no_data_is_unknown_and_never_passes(routes_file):
    plan = plan_for("http://127.0.0.1:9/metrics")  # nothing listens there
    results = evaluate(plan, routes_file, Gate("max_diff_rate", 0.01), Gate("min_shadow_sample", 10),
                       Gate("max_error_rate_increase", 0.01), Gate("max_p99_seconds", 1.0))
    assert [r.status for r in results] == [UNKNOWN] * 4
    assert all("metrics unavailable" in r.detail for r in results)
    assert not gates_pass(results)


def test_shadow_sample_and_diff_rate_since_the_step_began(proxy_admin, routes_file):
    metrics, url = proxy_admin
    plan = plan_for(url)
    sample, rate = Gate("min_shadow_sample", 100), Gate("max_diff_rate", 0.05)
    assert [r.status for r in evaluate(plan, routes_file, sample, rate)] == [WAITING, UNKNOWN]  # no comparisons yet

    metrics.shadow_comparisons.labels(route=PRODUCTS).inc(500)  # before the step began: not counted
    metrics.shadow_diffs.labels(route=PRODUCTS).inc(400)
    baseline = metrics_fetch(url=url)
    metrics.shadow_comparisons.labels(route=PRODUCTS).inc(80)
    metrics.shadow_comparisons.labels(route=CATEGORIES).inc(40)
    metrics.shadow_comparisons.labels(route="/api/cart/").inc(1000)  # another plan's route
    metrics.shadow_diffs.labels(route=CATEGORIES).inc(3)
    results = evaluate(plan, routes_file, sample, rate, baseline=baseline)
    assert (results[0].status, results[0].value) == (PASS, 120)
    assert (results[1].status, results[1].value) == (PASS, pytest.approx(3 / 120))
    metrics.shadow_diffs.labels(route=PRODUCTS).inc(10)
    results = evaluate(plan, routes_file, rate, baseline=baseline)
    assert (results[0].status, results[0].value) == (FAIL, pytest.approx(13 / 120))
    assert results[0].detail == "13 of 120 comparisons differed"


def test_error_rate_increase_counts_fallbacks_and_compares_with_the_monolith(proxy_admin, routes_file):
    metrics, url = proxy_admin
    plan = plan_for(url)
    gate = Gate("max_error_rate_increase", 0.05)
    assert evaluate(plan, routes_file, gate)[0].status == UNKNOWN  # no service traffic yet
    served(metrics, PRODUCTS, "monolith", 200, 0.01, n=98)
    served(metrics, PRODUCTS, "monolith", 500, 0.01, n=2)  # the monolith's own 2 %
    served(metrics, PRODUCTS, "catalog", 200, 0.02, n=96)
    served(metrics, PRODUCTS, "catalog", 503, 0.02, n=2)
    result = evaluate(plan, routes_file, gate)[0]
    assert result.status == PASS and result.value == pytest.approx(2 / 98 - 2 / 100)
    # the service failing behind a fallback: the client got the monolith's answer, but it is a service failure
    for _ in range(10):
        metrics.fallbacks.labels(route=PRODUCTS, upstream="catalog", reason="5xx").inc()
        served(metrics, PRODUCTS, "monolith", 200, 0.01)
    result = evaluate(plan, routes_file, gate)[0]
    assert result.status == FAIL and result.value == pytest.approx(12 / 108 - 2 / 100)
    assert "catalog 11.11% of 108 vs monolith 2.00% on these routes" in result.detail


def test_error_rate_when_every_request_goes_to_the_service_compares_with_the_whole_monolith(proxy_admin, routes_file):
    metrics, url = proxy_admin
    plan = plan_for(url)
    served(metrics, "/api/cart/", "monolith", 200, 0.01, n=50)
    served(metrics, PRODUCTS, "catalog", 200, 0.01, n=50)
    result = evaluate(plan, routes_file, Gate("max_error_rate_increase", 0.01))[0]
    assert (result.status, result.value) == (PASS, 0.0) and "on all routes" in result.detail


def test_p99_from_the_service_latency_histogram(proxy_admin, routes_file):
    metrics, url = proxy_admin
    plan = plan_for(url)
    gate = Gate("max_p99_seconds", 0.3)
    assert evaluate(plan, routes_file, gate)[0].status == UNKNOWN
    served(metrics, PRODUCTS, "monolith", 200, 5.0, n=100)  # the monolith's latency does not count
    served(metrics, PRODUCTS, "catalog", 200, 0.02, n=99)
    served(metrics, CATEGORIES, "catalog", 200, 0.2, n=1)
    result = evaluate(plan, routes_file, gate)[0]
    assert (result.status, result.value) == (PASS, 0.025)  # 99 of 100 are within the 25 ms bucket
    served(metrics, CATEGORIES, "catalog", 200, 2.0, n=5)
    result = evaluate(plan, routes_file, gate)[0]
    assert (result.status, result.value) == (FAIL, 2.5)


def test_histogram_quantile():
    assert histogram_quantile([], 0.99) is None
    assert histogram_quantile([(0.1, 0), (float("inf"), 0)], 0.99) is None
    assert histogram_quantile([(0.1, 50), (0.5, 99), (1.0, 100), (float("inf"), 100)], 0.99) == 0.5
    assert histogram_quantile([(0.1, 50), (0.5, 98), (1.0, 100), (float("inf"), 100)], 0.99) == 1.0


def test_a_restarted_proxy_is_measured_from_zero(proxy_admin, routes_file):
    metrics, url = proxy_admin
    plan = plan_for(url)
    baseline = Samples(rows=(("strangler_proxy_shadow_comparisons_total", {"route": PRODUCTS}, 900.0),))
    metrics.shadow_comparisons.labels(route=PRODUCTS).inc(30)  # 30 < 900: the counter restarted
    result = evaluate(plan, routes_file, Gate("min_shadow_sample", 20), baseline=baseline)[0]
    assert (result.status, result.value) == (PASS, 30)


def test_soak_health_and_sync_gates(tmp_path, proxy_admin):
    _, url = proxy_admin
    up = JsonUpstream("catalog")
    try:
        routes_file = write_routes(tmp_path / "routes.yaml", monolith="http://127.0.0.1:9", catalog=up.url)
        plan = plan_for(url, sync_projects=("no_such_project.settings",))
        results = evaluate(plan, routes_file, Gate("min_soak_seconds", 60), Gate("min_soak_seconds", 5),
                           Gate("healthy", 0, upstreams=("catalog",)), Gate("healthy", 0, upstreams=("monolith",)),
                           Gate("max_relay_backlog", 0), entered_at=time.time() - 10)
    finally:
        up.stop()
    assert [r.status for r in results] == [WAITING, PASS, PASS, FAIL, UNKNOWN]
    assert results[3].detail == "monolith ConnectionError"
    assert "no_such_project.settings" in results[4].detail
    no_projects = evaluate(plan_for(url), routes_file, Gate("max_relay_lag_seconds", 5))[0]
    assert (no_projects.status, no_projects.detail) == (UNKNOWN, "the plan names no sync_projects")
