"""`plan watch` against a real proxy process: a canary holds while the service is healthy and is rolled back on its
own, with the reason, once the service starts answering 500s."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from migrations_plan.state import history_read, state_load
from strangler_proxy.loader import load_route_file
from tests.waiting import REQUEST_TIMEOUT, WAIT_TIMEOUT, wait_until

from .conftest import write_routes
from .procs import JsonUpstream, free_port, plan_cli, start_proxy, stop

pytestmark = pytest.mark.slow

PLAN = """\
plan: watched
service: catalog
routes: [/api/products/]
proxy_metrics: http://127.0.0.1:{admin}/metrics
steps:
  - name: canary
    kind: canary
    actions:
      - route: /api/products/
        set: {{mode: canary, weight: 50}}
    gates: {{min_soak_seconds: 0}}
    watch:
      max_error_rate_increase: 0.2
      max_p99_seconds: 30.0  # latency on a busy CI box is not what this test is about
"""


class Traffic:
    """Clients with different user ids (so the canary splits them) sending GETs through the proxy until stopped."""

    def __init__(self, port: int):
        self.port, self.answers, self.stop_event = port, [], threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        session = requests.Session()
        i = 0
        while not self.stop_event.is_set():
            i += 1
            try:
                r = session.get(f"http://127.0.0.1:{self.port}/api/products/?n={i}", headers={"X-User-Id": f"u{i}"},
                                timeout=5)
                self.answers.append((time.monotonic(), r.status_code, r.headers.get("X-Strangler-Upstream")))
            except requests.RequestException as exc:
                self.answers.append((time.monotonic(), 0, type(exc).__name__))
            time.sleep(0.01)

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=10)


def test_watch_rolls_back_a_failing_canary(tmp_path, state_dir):
    monolith, catalog = JsonUpstream("monolith"), JsonUpstream("catalog")
    port, admin = free_port(), free_port()
    routes_file = write_routes(tmp_path / "routes.yaml", monolith=monolith.url, catalog=catalog.url)
    plan_path = tmp_path / "watched.yaml"
    plan_path.write_text(PLAN.format(admin=admin))
    env = {"STRANGLER_PLAN_STATE_DIR": str(state_dir)}
    args = [str(plan_path), "--routes", str(routes_file), "--actor", "ci"]
    proxy = start_proxy(routes_file, tmp_path, port=port, admin_port=admin)
    traffic = None
    try:
        advanced = plan_cli("advance", *args, env=env)
        assert advanced.returncode == 0, advanced.stderr
        traffic = Traffic(port)
        # the canary really splits traffic (once the proxy has reloaded the advanced route file)
        wait_until(lambda: {upstream for _, status, upstream in traffic.answers[-40:] if status == 200}
                   == {"monolith", "catalog"}, what=lambda: f"both upstreams in {traffic.answers[-40:]}")

        held = plan_cli("watch", *args, "--interval", "0.5", "--max-seconds", "1.5", env=env)
        assert held.returncode == 0, held.stdout + held.stderr
        assert "watched: no watch gate failed in 1.5s" in held.stdout
        assert "PASS    max_error_rate_increase = 0 (needs <= 0.2)" in held.stdout

        catalog.status = 500  # the service breaks mid-canary
        started = time.monotonic()
        watched = plan_cli("watch", *args, "--interval", "0.5", "--max-seconds", "300", env=env)
        took = time.monotonic() - started
        assert watched.returncode == 3, watched.stdout + watched.stderr
        last = watched.stdout.strip().splitlines()[-1]
        assert last.startswith("watched: rolled back canary: watch: FAIL    max_error_rate_increase = "), last
        assert took < WAIT_TIMEOUT  # rolled back at the first failing check, long before --max-seconds

        assert load_route_file(routes_file).routes[0].mode == "monolith"
        assert state_load(plan="watched").position == 0
        entry = history_read(plan="watched")[-1]
        assert (entry["action"], entry["result"], entry["actor"]) == ("watch-rollback", "rolled_back", "ci")
        failed = [g for g in entry["gates"] if g["status"] == "fail"]
        assert failed and failed[0]["kind"] == "max_error_rate_increase" and failed[0]["value"] > 0.2

        rolled_back = load_route_file(routes_file).digest
        wait_until(lambda: requests.get(f"http://127.0.0.1:{admin}/diffs", timeout=REQUEST_TIMEOUT).json()[
            "route_table"]["digest"] == rolled_back, what="the proxy to serve the rolled-back route file")
        mark = time.monotonic()
        wait_until(lambda: len([at for at, _, _ in traffic.answers if at > mark]) >= 20, what="20 more answers")
        # One client, one request at a time: only the first answer after the mark can have been sent before it.
        after = [(status, upstream) for at, status, upstream in traffic.answers if at > mark][1:]
        assert all(answer == (200, "monolith") for answer in after), after[:10]
    finally:
        if traffic is not None:
            traffic.stop()
        stop(proxy)
        monolith.stop()
        catalog.stop()
