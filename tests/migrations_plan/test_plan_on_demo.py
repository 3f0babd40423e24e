"""The catalog plan walked on the running demo (`python3 dev.py demo`) with the real CLI, as the guide says, on
each traffic plane: mitmproxy, and nginx (`--plane nginx`: the gates read its exporter and diff endpoint).

Forward to the end (ownership flip and retired path included), checking after each step which upstream
serves /api/products/ through the proxy; then back step by step: the flip is refused without
--allow-irreversible, the plan is frozen and unfrozen, and during the 50 % canary the catalog service is
killed and `plan watch` rolls the canary back on its own, with the failing gate in the history. Last, SIGINT
stops the demo and none of its processes is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import requests
import yaml

from tests.test_demo import Demo, _process_groups
from tests.verify_token import verify_headers
from tests.waiting import wait_until

from .procs import REPO

pytestmark = [pytest.mark.slow, pytest.mark.backend_independent]  # the demo's own embedded default

SERVICE_TOKEN = "plan-walk-staff-token"
# The demo and the plan run on the embedded default: the caller's real-service settings must not leak in.
NOT_INHERITED = ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE", "STRANGLER_ROUTES",
                 "STRANGLER_OWNERSHIP_FILE", "STRANGLER_SYNC_NAMESPACE", "STRANGLER_PLAN_STATE_DIR",
                 "STRANGLER_PLANS_DIR", "STRANGLER_PROXY_ADMIN_URL", "STRANGLER_PROXY_METRICS")


class Walk:
    """The plan CLI pointed at the demo (its var dir, route file and proxy admin) and traffic through its proxy."""

    def __init__(self, demo: Demo):
        self.demo, self.state = demo, demo.state
        env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED and not k.endswith("_DATABASE_URL")}
        env.update(STRANGLER_VAR_DIR=self.state["var_dir"], STRANGLER_ROUTES=self.state["routes_file"],
                   STRANGLER_PROXY_ADMIN_URL=self.state["proxy_admin"], PYTHONPATH=str(REPO), USER="demo-walk",
                   # the gates read the plane the demo runs: mitmproxy's admin, or nginx's exporter + diff endpoint
                   STRANGLER_PROXY_METRICS=self.state["proxy_metrics"],
                   # the guide's test-friendly overrides: a second of soak, a small shadow sample
                   CATALOG_SOAK_SECONDS="1", CATALOG_MIN_SHADOW_SAMPLE="30")
        self.env = env

    def plan(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "migrations_plan", *args], cwd=REPO, env=self.env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == expect, (f"plan {' '.join(args)}: exit {done.returncode}, wanted {expect}\n"
                                           f"{done.stdout}\n{done.stderr}\n{self.logs()}")
        return done

    def advance(self, expected_step: str) -> None:
        done = self.plan("advance", "catalog", "--wait", "60")
        assert "applied step" in done.stdout and f"({expected_step})" in done.stdout.splitlines()[0], done.stdout

    def rollback(self, expected_step: str, *extra: str) -> None:
        done = self.plan("rollback", "catalog", *extra)
        assert done.stdout.startswith(f"catalog: rolled back {expected_step},"), done.stdout

    def reads(self, count: int, path: str = "/api/products/", *, users: bool = False) -> Counter:
        """GETs through the proxy (distinct sticky users when asked); which upstream answered, with the status."""
        seen: Counter = Counter()
        for i in range(count):
            headers = {"X-User-Id": f"walker{i}"} if users else {}
            answer = requests.get(f"{self.state['proxy']}{path}", headers=headers,
                                  params={"page": i % 3 + 1} if path == "/api/products/" else None,
                                  timeout=15)
            seen[(answer.status_code, answer.headers.get("X-Strangler-Upstream"))] += 1
        # the whole monolith's traffic too: the error-rate gate compares with it once no route read goes there
        assert requests.get(f"{self.state['proxy']}/", timeout=15).status_code == 200
        return seen

    def served_by(self, upstream: str, path: str = "/api/products/") -> None:
        url = f"{self.state['proxy']}{path}"
        wait_until(lambda: requests.get(url, timeout=15).headers.get("X-Strangler-Upstream") == upstream,
                   what=f"{path} served by {upstream}")

    def route(self, prefix: str) -> dict:
        document = yaml.safe_load(Path(self.state["routes_file"]).read_text())
        return next(r for r in document["routes"] if r.get("prefix") == prefix)

    def owners(self) -> dict:
        """Who owns what, as both projects say it (each in its own database): they must agree, epochs too."""
        seen = {}
        for project in ("monolith", "catalog"):
            answer = requests.get(f"{self.state['projects'][project]}/sync/ownership/", timeout=10).json()
            seen[project] = {o["aggregate"]: (o["owner"], o["epoch"]) for o in answer["owners"]}
        assert seen["monolith"] == seen["catalog"], seen
        return {aggregate: owner for aggregate, (owner, _epoch) in seen["monolith"].items()}

    def count(self, project: str, aggregate: str) -> int:
        url = f"{self.state['projects'][project]}/sync/checksums/{aggregate}/"
        return requests.get(url, headers=verify_headers(), timeout=10).json()["count"]

    def logs(self) -> str:
        return self.demo.text()[-3000:]


@pytest.fixture(params=["mitmproxy", pytest.param("nginx", marks=pytest.mark.nginx)])
def demo(request, tmp_path, monkeypatch):
    """The demo on either traffic plane (`python3 dev.py demo --plane nginx`)."""
    monkeypatch.setenv("CATALOG_API_TOKENS", SERVICE_TOKEN)  # staff writes to the service after the flip
    started = Demo(tmp_path / "demo-var", plane=request.param)
    try:
        started.wait_ready(timeout=300)
        yield started
    finally:
        if started.process.poll() is None:
            started.kill_everything()


def test_catalog_plan_walks_forward_and_back_on_the_demo(demo):
    walk = Walk(demo)
    products, categories = "/api/products/", "/api/categories/"
    routes_before = yaml.safe_load(Path(walk.state["routes_file"]).read_text())
    assert walk.route(products)["mode"] == "service"  # the demo serves catalog reads from the service already

    walk.plan("check", "catalog")
    assert "catalog: step 0/9" in walk.plan("status", "catalog").stdout

    # deploy, backfill, verify: routes untouched, reads stay on the service
    for step in ("deploy", "backfill", "verify"):
        walk.advance(step)
        walk.served_by("catalog")
    assert walk.count("catalog", "product") == walk.count("monolith", "product") > 0

    # shadow: the monolith answers again, the service is compared
    walk.advance("shadow")
    walk.served_by("monolith")
    walk.served_by("monolith", categories)
    seen = walk.reads(40) + walk.reads(10, categories)
    assert set(seen) == {(200, "monolith")}, seen

    # canary 10 %: a few sticky users on the service (its gates: 30 comparisons, <= 1 % different)
    walk.advance("canary-10")
    seen = walk.reads(120, users=True)
    assert set(seen) == {(200, "monolith"), (200, "catalog")} and seen[(200, "catalog")] < 40, seen
    held = walk.plan("watch", "catalog", "--interval", "1", "--max-seconds", "2")
    assert "catalog: no watch gate failed in 2s" in held.stdout, held.stdout

    walk.advance("canary-50")
    seen = walk.reads(120, users=True)
    assert 30 < seen[(200, "catalog")] < 90 and seen[(200, "catalog")] + seen[(200, "monolith")] == 120, seen

    walk.advance("reads-to-service")
    walk.served_by("catalog")
    walk.served_by("catalog", categories)
    seen = walk.reads(40, users=True)
    assert set(seen) == {(200, "catalog")}, seen

    # the flip: the service owns the writes, and the route takes writes to it
    walk.advance("flip-ownership")
    assert walk.owners() == {"category": "catalog", "product": "catalog"}
    assert "methods" not in walk.route(products) and "methods" not in walk.route(categories)
    refused = requests.post(f"{walk.state['projects']['monolith']}/api/categories/", json={"name": "Not here"},
                            auth=("admin", "admin"), timeout=60)  # password hashing on a busy machine
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_owner", refused.text
    before = walk.count("monolith", "category")
    written = requests.post(f"{walk.state['proxy']}{categories}", json={"name": "Extracted on the demo"},
                            headers={"Authorization": f"Bearer {SERVICE_TOKEN}"}, timeout=15)
    assert written.status_code == 201 and written.headers["X-Strangler-Upstream"] == "catalog", written.text
    wait_until(lambda: walk.count("monolith", "category") == before + 1,
               what="the monolith to follow the category written on the service")
    seen = walk.reads(30) + walk.reads(10, categories)
    assert set(seen) == {(200, "catalog")}, seen

    walk.advance("retire-monolith-path")
    assert walk.route(products)["fallback"] is False and walk.route(categories)["fallback"] is False
    walk.served_by("catalog")
    status = walk.plan("status", "catalog").stdout
    assert "catalog: step 9/9 (retire-monolith-path)" in status and "FINISHED" in status, status
    assert "is finished" in walk.plan("advance", "catalog", expect=1).stderr

    # back: the retired path gets its fallback, the flip is refused, frozen, then undone deliberately
    walk.rollback("retire-monolith-path")
    assert walk.route(products)["fallback"] is True
    refusal = walk.plan("rollback", "catalog", expect=1).stderr
    assert "step flip-ownership is not reversible by rollback" in refusal, refusal
    walk.plan("freeze", "catalog", "--reason", "demo walk: fix forward or decide")
    assert "is frozen" in walk.plan("advance", "catalog", expect=1).stderr
    assert "is frozen" in walk.plan("rollback", "catalog", "--allow-irreversible", expect=1).stderr
    walk.plan("unfreeze", "catalog")
    walk.rollback("flip-ownership", "--allow-irreversible", "--reason", "demo walk back")
    assert walk.owners() == {"category": "monolith", "product": "monolith"}
    assert walk.route(products)["methods"] == ["GET", "HEAD", "OPTIONS"]
    wait_until(lambda: requests.post(f"{walk.state['proxy']}{products}", json={}, timeout=15).headers.get(
        "X-Strangler-Upstream") == "monolith", what="writes back on the monolith")
    walk.served_by("catalog")
    walk.rollback("reads-to-service")
    assert walk.route(products)["weight"] == 50

    # the service dies during the 50 % canary: watch rolls it back on its own, with the failing gate
    os.killpg(walk.state["pids"]["catalog"], signal.SIGKILL)
    wait_until(lambda: "demo: catalog exited" in demo.text(), what="the demo to report the dead service")
    seen = walk.reads(60, users=True)
    assert set(seen) == {(200, "monolith")}, seen  # the canary's users fall back to the monolith
    watched = walk.plan("watch", "catalog", "--interval", "0.5", "--max-seconds", "20", expect=3)
    last = watched.stdout.strip().splitlines()[-1]
    assert last.startswith("catalog: rolled back canary-50: watch: FAIL    max_error_rate_increase = "), last
    assert walk.route(products)["weight"] == 10
    history = [json.loads(line) for line in (Path(walk.state["var_dir"]) / "plans" / "history.jsonl").open()]
    entry = history[-1]
    assert (entry["action"], entry["result"], entry["step"], entry["actor"]) == (
        "watch-rollback", "rolled_back", "canary-50", "demo-walk")
    failed = next(g for g in entry["gates"] if g["status"] == "fail")
    assert failed["kind"] == "max_error_rate_increase" and failed["value"] > 0.02 and "catalog" in entry["reason"]

    for step in ("canary-10", "shadow", "verify", "backfill", "deploy"):
        walk.rollback(step)
    assert yaml.safe_load(Path(walk.state["routes_file"]).read_text()) == routes_before
    assert "has no applied step to roll back" in walk.plan("rollback", "catalog", expect=1).stderr
    def fallbacks() -> float:  # the proxy's count of product reads the dead catalog sent back to the monolith
        text = requests.get(f"{walk.state['proxy_admin']}/metrics", timeout=15).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(
            "strangler_proxy_fallbacks_total{") and 'upstream="catalog"' in line and products in line)

    before = fallbacks()
    fallback = requests.get(f"{walk.state['proxy']}{products}", timeout=15)  # service mode again, service dead
    assert fallback.headers["X-Strangler-Upstream"] == "monolith", dict(fallback.headers)
    if walk.state["plane"] == "mitmproxy":
        assert fallback.headers["X-Strangler-Fallback"]
    # nginx's breaker upstream tried the dead service (or skipped it, once open): no fallback header there, but
    # its exporter counts the fallback, as the mitmproxy plane does (within its log's 1 s flush)
    wait_until(lambda: fallbacks() > before, what="the proxy to count the fallback from the dead catalog")

    applied = [h["step"] for h in history if h["action"] == "advance" and h["result"] == "applied"]
    assert applied == ["deploy", "backfill", "verify", "shadow", "canary-10", "canary-50", "reads-to-service",
                       "flip-ownership", "retire-monolith-path"]

    # SIGINT stops the whole demo
    leaders = set(json.loads((demo.var_dir / "demo" / "stack.json").read_text())["pids"].values())
    members = {pid for pid, group in _process_groups().items() if group in leaders}
    demo.process.send_signal(signal.SIGINT)
    assert demo.process.wait(timeout=30) == 0
    left = {pid: group for pid, group in _process_groups().items() if group in leaders or pid in members}
    assert left == {}, f"processes left after SIGINT: {left}"
