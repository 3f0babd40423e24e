"""The dashboard plots each gate's value over the current step's window (inline SVG), checked in headless Chromium."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import requests

from migrations_plan.dashboard.gate_history import GateHistory
from migrations_plan.dashboard.render import dashboard_html
from strangler_proxy.metrics import AdminServer, ProxyMetrics
from tests.strangler_proxy.planes import stop_process, wait_for_port
from tests.strangler_proxy.upstreams import free_port
from tests.waiting import REQUEST_TIMEOUT, wait_until

from .procs import REPO

PRODUCTS = "/api/products/"
PLAN = f"""\
plan: spark
service: catalog
routes: [{PRODUCTS}]
proxy_metrics: {{url}}
steps:
  - name: canary
    kind: canary
    actions:
      - route: {PRODUCTS}
        set: {{mode: canary, weight: 10}}
    gates: {{max_error_rate_increase: 0.05, min_soak_seconds: 0}}
"""


def plan_row(position: int, entered_at: float, value) -> dict:
    return {"plan": "p", "position": position, "entered_at": entered_at, "gates": [
        {"kind": "max_p99_seconds", "status": "pass", "value": value, "threshold": 1.0}], "watch": []}


def test_the_window_restarts_with_each_step_and_is_bounded():
    history = GateHistory(max_points=3)
    for t, value in enumerate([0.1, None, 0.3, 0.4]):
        snapshot = history.record({"taken_at": float(t), "plans": [plan_row(1, 100.0, value)]})
    assert snapshot["plans"][0]["gates"][0]["history"] == [[1.0, None], [2.0, 0.3], [3.0, 0.4]]
    snapshot = history.record({"taken_at": 4.0, "plans": [plan_row(2, 103.5, 0.9)]})  # the next step began
    assert snapshot["plans"][0]["gates"][0]["history"] == [[4.0, 0.9]]
    # a plan not started yet reads "now" as its start every time: still one window
    for t in (5.0, 6.0):
        snapshot = history.record({"taken_at": t, "plans": [plan_row(0, t, 0.2)]})
    assert len(snapshot["plans"][0]["gates"][0]["history"]) == 2


def test_the_sparkline_leaves_gaps_for_unknown_values():
    history = GateHistory()
    for t, value in enumerate([0.1, 0.2, None, 0.5]):
        snapshot = history.record({"taken_at": float(t), "plans": [plan_row(1, 1.0, value)]})
    plan = {**snapshot["plans"][0], "steps": [], "current": "a", "next": "b", "finished": False, "frozen": None}
    html = dashboard_html({"taken_at": 0.0, "seconds": 0.1, "routes_file": "r", "routes_digest": "d", "routes": [],
                           "proxy": {"error": "x"}, "data_plane": [], "plans": [plan]}, refresh_seconds=5)
    assert 'data-field="sparkline" data-points="3"' in html
    assert html.count("<polyline") == 1 and html.count("<circle") == 1  # 0.1-0.2, then 0.5 alone


SPARKLINE = """(() => {
  const row = document.querySelector('.plan[data-plan=spark] tr[data-gate=max_error_rate_increase]');
  const cell = row.querySelector('[data-field=sparkline]');
  const line = cell.querySelector('svg polyline');
  const box = cell.querySelector('svg').getBoundingClientRect();
  return {points: cell.dataset.points, coords: line ? line.getAttribute('points').split(' ').length : 0,
          width: box.width, height: box.height, status: row.querySelector('[data-field=status]').textContent};
})()"""


@pytest.mark.chromium
def test_the_page_plots_a_canary_going_wrong(tmp_path, routes_file, state_dir):
    from tests.monolith.orders.browser import Browser

    metrics = ProxyMetrics()
    admin = AdminServer(metrics=metrics, diff_summary=dict).start()
    plan_path = tmp_path / "spark.yaml"
    plan_path.write_text(textwrap.dedent(PLAN).replace("{url}", f"http://127.0.0.1:{admin.port}/metrics"))
    port = free_port()
    dashboard = subprocess.Popen(
        [sys.executable, "-m", "migrations_plan.dashboard", "--routes", str(routes_file), "--proxy-admin",
         f"http://127.0.0.1:{admin.port}", "--plan", str(plan_path), "--port", str(port), "--refresh", "1"],
        cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    browser = None
    try:
        wait_for_port(port)
        last = 0.0
        for errors in (0, 1, 4):  # the catalog's errors grow while the monolith's stay at 0
            for _ in range(10):
                metrics.requests.labels(route=PRODUCTS, upstream="monolith", status="200").inc()
            metrics.requests.labels(route=PRODUCTS, upstream="catalog", status="500").inc(errors)
            metrics.requests.labels(route=PRODUCTS, upstream="catalog", status="200").inc(10 - errors)

            def new_snapshot(after: float = last) -> float | None:  # the page caches a snapshot for 0.5 s
                taken = requests.get(url + "/snapshot.json", timeout=REQUEST_TIMEOUT).json()["taken_at"]
                return taken if taken > after else None

            last = wait_until(new_snapshot, what="a new dashboard snapshot")
        browser = Browser()
        browser.goto(url + "/")
        seen = browser.evaluate(SPARKLINE)
        assert int(seen["points"]) >= 3 and seen["coords"] == int(seen["points"])
        assert seen["width"] == 160 and seen["height"] == 32
        assert seen["status"] == "fail"  # 5 of 30 catalog answers failed, none of the monolith's
    finally:
        if browser is not None:
            browser.close()
        stop_process(dashboard)
        admin.stop()
