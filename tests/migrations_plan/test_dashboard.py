"""The dashboard in headless Chromium against live processes with known traffic.

Live: the monolith and the catalog service (whose copy of product 1 differs), `strangler-proxy run`, a plan
advanced one step by the real `plan advance`, and `python -m migrations_plan.dashboard`. The page's numbers
are read back from the rendered DOM and compared with the proxy's own /metrics, the data plane's own gauges,
`plan_status`, and what the test sent.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from migrations_plan.loader import load_plan
from migrations_plan.metrics import metrics_fetch
from migrations_plan.relay_state import relay_state_fetch
from migrations_plan.selectors import plan_status
from strangler_proxy.murmur import in_canary
from tests.extracted.catalog import live
from tests.migrations_plan import procs
from tests.migrations_plan.sidebyside_live import live_pair_start, proxy_start
from tests.waiting import WAIT_TIMEOUT

ROUTES = """
upstreams:
  monolith: {monolith}
  catalog: {service}
  gone: {gone}
monolith: monolith
routes:
  - prefix: /api/orders/
    mode: service
    service: gone
    timeout: 2
  - prefix: /api/products/
    mode: canary
    service: catalog
    weight: 50
    shadow: {{sample: 1.0}}
    diff: {{headers: [content-type]}}
  - prefix: /api/categories/
    mode: monolith
    service: catalog
"""

PLAN = """
plan: catalog
description: test plan for the dashboard
service: catalog
routes: [/api/products/, /api/categories/]
proxy_metrics: {admin}/metrics
sync_projects: [monolith]
steps:
  - name: shadow
    kind: shadow
    description: compare every category read
    actions:
      - route: /api/categories/
        set: {{mode: shadow}}
    gates:
      healthy: [monolith, catalog]
  - name: canary-50
    kind: canary
    description: half of the users on the service
    actions:
      - route: /api/products/
        set: {{mode: canary, weight: 50}}
    gates:
      min_shadow_sample: 10
      max_diff_rate: 0.01
      max_relay_backlog: 100
      min_soak_seconds: 3600
"""

PRODUCT_USERS = [f"user-{i}" for i in range(20)]
DEAD_SERVICE_READS = 3
CATEGORY_READS = 10
DEAD_OUTBOX_ROWS = 2


def _wait(predicate, *, timeout: float = WAIT_TIMEOUT, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("dashboard")
    pair = live_pair_start(workdir=workdir, rename_in_service={1: "Renamed In The Service"})
    processes: list[subprocess.Popen] = []
    try:
        monolith_env = live.project_env(workdir=workdir, DATABASE_URL=f"sqlite:///{workdir / 'monolith.sqlite3'}",
                                        STRANGLER_SYNC_RELAY_TRIGGER="none")
        # Data plane state: the backfill's events wait in the outbox (no relay runs); two gave up; one dead letter.
        live.manage(live.MONOLITH_MANAGE, "sync_backfill", "--aggregate", "category", "--no-progress",
                    env=monolith_env)
        with sqlite3.connect(workdir / "monolith.sqlite3") as db:
            db.execute("UPDATE strangler_sync_outboxevent SET status = 'dead' WHERE id IN "
                       "(SELECT id FROM strangler_sync_outboxevent ORDER BY id LIMIT ?)", (DEAD_OUTBOX_ROWS,))
            db.execute("INSERT INTO strangler_sync_deadletter (message_id, queue, event_type, body, error, attempts, "
                       "created_at) VALUES ('m-1', 'monolith.events', 'product.updated', '{}', "
                       "'handler failed 5 times: IntegrityError', 5, '2026-01-01 00:00:00')")
            pending = db.execute("SELECT COUNT(*) FROM strangler_sync_outboxevent "
                                 "WHERE status = 'pending'").fetchone()[0]
        assert pending > 0

        routes = workdir / "routes.yaml"
        routes.write_text(ROUTES.format(monolith=pair.monolith.url, service=pair.service.url,
                                        gone=f"http://127.0.0.1:{live.free_port()}"))
        proxy, proxy_url, admin_url = proxy_start(routes=routes, workdir=workdir,
                                                  extra=("--hosts", f"127.0.0.1,localhost,{live.SHARED_HOST}"))
        processes.append(proxy)
        plans = workdir / "plans"
        plans.mkdir()
        (plans / "catalog.yaml").write_text(PLAN.format(admin=admin_url))
        env = {**monolith_env, "STRANGLER_PLANS_DIR": str(plans), "STRANGLER_PLAN_STATE_DIR": str(workdir / "state"),
               "PYTHONPATH": str(live.REPO)}
        advanced = procs.plan_cli("advance", "catalog", "--routes", str(routes), "--actor", "dashboard-test", env=env)
        assert advanced.returncode == 0, advanced.stdout + advanced.stderr
        _wait(lambda: metrics_fetch(url=f"{admin_url}/metrics").total(
            "strangler_proxy_route_table_reloads_total", result="ok") >= 1, what="the proxy to load the plan's edit")

        port = live.free_port()
        dashboard = subprocess.Popen(
            [sys.executable, "-m", "migrations_plan.dashboard", "--routes", str(routes), "--proxy-admin", admin_url,
             "--sync-project", f"monolith={pair.monolith.url}", "--metrics", f"monolith={pair.monolith.url}/metrics",
             "--metrics", f"catalog={pair.service.url}/metrics",
             "--port", str(port), "--refresh", "2"],
            cwd=live.REPO, env=env, stdout=(workdir / "dashboard.log").open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        processes.append(dashboard)
        procs.wait_http(f"http://127.0.0.1:{port}/healthz", process=dashboard)
        yield {"pair": pair, "proxy": proxy_url, "admin": admin_url, "dashboard": f"http://127.0.0.1:{port}",
               "env": env, "routes": routes, "pending": pending, "workdir": workdir}
    finally:
        for process in processes:
            procs.stop(process)
        pair.stop()


def _send_known_traffic(stack) -> tuple[int, int]:
    """Product reads from 20 sticky users (product 1 differs in the service) and category reads."""
    ids = stack["pair"].product_ids
    for i, user in enumerate(PRODUCT_USERS):
        response = requests.get(f"{stack['proxy']}/api/products/{ids[i % len(ids)]}/",
                                headers={"X-User-Id": user, "Host": live.SHARED_HOST}, timeout=10)
        assert response.status_code == 200
    for _ in range(CATEGORY_READS):
        assert requests.get(f"{stack['proxy']}/api/categories/", headers={"Host": live.SHARED_HOST}, timeout=10).ok
    for _ in range(DEAD_SERVICE_READS):  # a service nobody runs, no fallback: the proxy answers 503
        assert requests.get(f"{stack['proxy']}/api/orders/", headers={"Host": live.SHARED_HOST}, timeout=10
                            ).status_code == 503
    to_service = sum(in_canary(user, 50) for user in PRODUCT_USERS)
    return to_service, len(PRODUCT_USERS) - to_service


def _comparisons(admin: str) -> float:
    return metrics_fetch(url=f"{admin}/metrics").total("strangler_proxy_shadow_comparisons_total")


PAGE_DATA = """(() => {
  const num = (el) => el ? el.textContent.trim() : null;
  const traffic = {};
  for (const row of document.querySelectorAll('#traffic tr[data-route]')) {
    const up = {};
    for (const u of row.querySelectorAll('[data-upstream]')) {
      up[u.dataset.upstream] = {requests: num(u.querySelector('[data-field=requests]')),
                                share: num(u.querySelector('[data-field=share]')),
                                errors: num(u.querySelector('[data-field=errors]'))};
    }
    const cell = (f) => num(row.querySelector(`:scope > [data-field=${f}]`));
    traffic[row.dataset.route] = {requests: cell('requests'), upstreams: up, errorRate: cell('error-rate'),
      compared: cell('shadow-comparisons'), diffs: cell('shadow-diffs'), diffRate: cell('diff-rate')};
  }
  const routes = {};
  for (const row of document.querySelectorAll('#routes tr[data-route]')) {
    routes[row.dataset.route] = {mode: num(row.querySelector('[data-field=mode]')),
                                 weight: num(row.querySelector('[data-field=weight]'))};
  }
  const sync = {};
  for (const row of document.querySelectorAll('#data-plane tr[data-project]')) {
    const f = (n) => num(row.querySelector(`[data-field=${n}]`));
    sync[row.dataset.project] = {backlog: f('backlog'), lag: f('relay-lag'), dead: f('outbox-dead'),
                                 deadLetters: f('dead-letters'), httpErrors: f('http-error-rate')};
  }
  const plans = {};
  for (const p of document.querySelectorAll('.plan[data-plan]')) {
    const gates = {};
    for (const g of p.querySelectorAll('tr[data-gate]')) {
      gates[g.dataset.gate] = {status: num(g.querySelector('[data-field=status]')),
                               value: num(g.querySelector('[data-field=value]'))};
    }
    plans[p.dataset.plan] = {current: num(p.querySelector('[data-field=current]')),
                             next: num(p.querySelector('[data-field=next]')),
                             position: num(p.querySelector('[data-field=position]')), gates};
  }
  return {traffic, routes, sync, plans, refresh: document.querySelector('meta[http-equiv=refresh]').content,
          scripts: document.scripts.length, title: document.title};
})()"""


def _categories_shown(browser) -> str | None:
    from tests.monolith.orders.browser import BrowserError

    try:
        return browser.evaluate(PAGE_DATA)["traffic"]["/api/categories/"]["requests"]
    except BrowserError:  # the refresh replaced the page while we read it: look again after the next load
        return None


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


@pytest.mark.chromium
@pytest.mark.slow
def test_dashboard_shows_the_live_numbers(stack, tmp_path, monkeypatch):
    from tests.monolith.orders.browser import Browser

    to_service, to_monolith = _send_known_traffic(stack)
    expected_comparisons = len(PRODUCT_USERS) + CATEGORY_READS
    _wait(lambda: _comparisons(stack["admin"]) >= expected_comparisons, what="every shadow comparison")
    time.sleep(2.5)  # let the dashboard's snapshot cache (2 s) expire so the page reflects the traffic
    metrics = metrics_fetch(url=f"{stack['admin']}/metrics")
    for name in ("STRANGLER_PLANS_DIR", "STRANGLER_PLAN_STATE_DIR"):  # as the dashboard sees them
        monkeypatch.setenv(name, stack["env"][name])
    relay = relay_state_fetch(base_url=stack["pair"].monolith.url)  # the monolith's own /sync/relay/
    status = plan_status(plan=load_plan("catalog", routes=stack["routes"]), routes=stack["routes"])

    browser = Browser()
    try:
        browser.call("Emulation.setDeviceMetricsOverride",
                     {"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": False})
        browser.goto(stack["dashboard"] + "/")
        page = browser.evaluate(PAGE_DATA)

        assert page["title"] == "Strangler migration dashboard" and page["scripts"] == 0 and page["refresh"] == "2"
        # route table: modes as in the route file after the plan's first step
        assert page["routes"]["/api/products/"] == {"mode": "canary", "weight": "50"}
        assert page["routes"]["/api/categories/"]["mode"] == "shadow"

        # traffic split: what the test sent, and exactly the proxy's own counters
        products = page["traffic"]["/api/products/"]
        assert products["upstreams"]["catalog"]["requests"] == str(to_service)
        assert products["upstreams"]["monolith"]["requests"] == str(to_monolith)
        for upstream in ("catalog", "monolith"):
            counted = metrics.total("strangler_proxy_requests_total", route="/api/products/", upstream=upstream)
            assert products["upstreams"][upstream]["requests"] == f"{counted:g}"
        assert products["upstreams"]["catalog"]["share"] == _pct(to_service / len(PRODUCT_USERS))
        assert products["requests"] == str(len(PRODUCT_USERS)) and products["errorRate"] == "0.0%"
        assert (products["compared"], products["diffs"]) == (str(len(PRODUCT_USERS)), "1")  # product 1 differs
        assert products["diffRate"] == _pct(1 / len(PRODUCT_USERS))
        categories = page["traffic"]["/api/categories/"]
        assert categories["upstreams"] == {"monolith": {"requests": str(CATEGORY_READS), "share": "100.0%",
                                                        "errors": "0"}}
        assert (categories["compared"], categories["diffs"], categories["diffRate"]) == \
            (str(CATEGORY_READS), "0", "0.0%")

        # error rates: the dead service's requests, answered 503 by the proxy itself
        orders = page["traffic"]["/api/orders/"]
        assert orders["upstreams"] == {"proxy": {"requests": str(DEAD_SERVICE_READS), "share": "100.0%",
                                                 "errors": str(DEAD_SERVICE_READS)}}
        assert orders["errorRate"] == "100.0%" and orders["compared"] == "0" and orders["diffRate"] == "–"
        assert metrics.total("strangler_proxy_requests_total", route="/api/orders/", status="503") == \
            DEAD_SERVICE_READS

        # data plane: the monolith's outbox as its own /sync/relay/ says, and the dead letter
        monolith = page["sync"]["monolith"]
        assert monolith["backlog"] == str(stack["pending"]) == str(relay["backlog"])
        assert monolith["dead"] == str(DEAD_OUTBOX_ROWS) == str(relay["outbox_dead"])
        assert monolith["deadLetters"].startswith("1") and "IntegrityError" in monolith["deadLetters"]
        assert float(monolith["lag"]) > 0
        assert page["sync"]["catalog"]["httpErrors"] == "0.0%"  # from the service's own /metrics
        assert monolith["httpErrors"] == "0.0%"  # the monolith's row merges its database and its /metrics

        # plans: current step and gate values exactly as plan_status computes them
        plan = page["plans"]["catalog"]
        assert (plan["current"], plan["next"], plan["position"]) == ("shadow", "canary-50", "1")
        expected = {g["kind"]: g for g in status["gates"]}
        assert set(plan["gates"]) == set(expected) == {"min_shadow_sample", "max_diff_rate", "max_relay_backlog",
                                                       "min_soak_seconds"}
        assert plan["gates"]["min_shadow_sample"] == {"status": "pass", "value": str(expected_comparisons)}
        assert plan["gates"]["max_diff_rate"] == {"status": "fail",
                                                  "value": f"{round(1 / expected_comparisons, 4):g}"}
        assert expected["max_diff_rate"]["status"] == "fail"
        assert plan["gates"]["max_relay_backlog"] == {"status": "pass", "value": str(stack["pending"])}
        assert plan["gates"]["min_soak_seconds"]["status"] == "waiting"

        screenshot = tmp_path / "dashboard.png"
        shot = browser.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 20_000
        if os.environ.get("DASHBOARD_SCREENSHOT"):
            Path(os.environ["DASHBOARD_SCREENSHOT"]).write_bytes(screenshot.read_bytes())

        # auto-refresh: more traffic shows up without anyone reloading the page
        for _ in range(4):
            assert requests.get(f"{stack['proxy']}/api/categories/", headers={"Host": live.SHARED_HOST}, timeout=10).ok
        # Each meta refresh fires a load event; a stale one only costs one more look.
        deadline = time.monotonic() + 60  # generous: a loaded CI box takes seconds per snapshot
        while _categories_shown(browser) != str(CATEGORY_READS + 4):
            assert time.monotonic() < deadline, "the page never showed the new requests"
            browser.wait_event("Page.loadEventFired")
    finally:
        browser.close()


def test_snapshot_reports_a_dead_source_instead_of_zeros(tmp_path):
    """No proxy, no project: the snapshot says so per source (never a silent 0)."""
    from migrations_plan.dashboard.render import dashboard_html
    from migrations_plan.dashboard.selectors import dashboard_snapshot

    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES.format(monolith="http://127.0.0.1:9", service="http://127.0.0.1:9",
                                    gone="http://127.0.0.1:9"))
    nobody = f"http://127.0.0.1:{live.free_port()}"
    snapshot = dashboard_snapshot(routes=routes, proxy_admin=nobody, metrics={"catalog": f"{nobody}/metrics"},
                                  plans=[])
    assert snapshot["proxy"]["error"].startswith(f"proxy metrics unavailable: {nobody}/metrics: ConnectionError")
    catalog = snapshot["data_plane"][0]
    assert catalog["project"] == "catalog" and "backlog" not in catalog and "http_error_rate" not in catalog
    assert catalog["errors"][0].startswith(f"{nobody}/metrics: {nobody}/metrics: ConnectionError")
    html = dashboard_html(snapshot, refresh_seconds=5)
    assert 'id="proxy-error"' in html and "<script" not in html
    assert [r["mode"] for r in snapshot["routes"]] == ["service", "canary", "monolith"]
    json.dumps(snapshot)  # what /snapshot.json serves


@pytest.mark.slow
def test_stack_file_of_the_demo_names_every_source(stack, tmp_path):
    """`--stack var/demo/stack.json`: route file, proxy admin and each project (database and /metrics)."""
    state = {"proxy": stack["proxy"], "proxy_admin": stack["admin"], "routes_file": str(stack["routes"]),
             "projects": {"monolith": stack["pair"].monolith.url}, "var_dir": str(stack["workdir"] / "var")}
    (tmp_path / "stack.json").write_text(json.dumps(state))
    port = live.free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "migrations_plan.dashboard", "--stack", str(tmp_path / "stack.json"),
         "--port", str(port)],
        cwd=live.REPO, env=stack["env"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        procs.wait_http(f"http://127.0.0.1:{port}/healthz", process=process)
        snapshot = requests.get(f"http://127.0.0.1:{port}/snapshot.json", timeout=60).json()
    finally:
        procs.stop(process)
    assert snapshot["routes_file"] == str(stack["routes"])
    sent = metrics_fetch(url=f"{stack['admin']}/metrics").total("strangler_proxy_requests_total", route="/api/orders/")
    orders = next(t for t in snapshot["proxy"]["traffic"] if t["route"] == "/api/orders/")
    assert orders["requests"] == sent
    [monolith] = snapshot["data_plane"]
    assert monolith["sources"] == [stack["pair"].monolith.url, f"{stack['pair'].monolith.url}/metrics"]
    assert monolith["errors"] == [] and monolith["backlog"] == stack["pending"]
    assert monolith["http_error_rate"] == 0.0
    assert [p["plan"] for p in snapshot["plans"]] == ["catalog"]


def test_unreadable_stack_file_is_one_line_and_exit_2(tmp_path):
    from migrations_plan.dashboard.cli import main

    missing = tmp_path / "stack.json"
    done = subprocess.run([sys.executable, "-m", "migrations_plan.dashboard", "--stack", str(missing)],
                          cwd=live.REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith(f"strangler-dashboard: error: {missing}: not a readable stack file")
    assert done.stderr.count("\n") == 1
    missing.write_text("{}")
    assert main(["--stack", str(missing)]) == 2
