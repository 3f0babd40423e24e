"""The tutorial (docs/tutorial.md) run verbatim on the embedded default with real processes, then the catalog
plan walked back step by step: the guide cannot rot, and every step of the plan is reversible or says why not."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from migrations_plan.state import history_read, state_load
from strangler_proxy.loader import DEFAULT_ROUTE_FILE
from tests.waiting import REQUEST_TIMEOUT

from .procs import REPO, free_port

pytestmark = [pytest.mark.slow, pytest.mark.backend_independent]  # the guide's own embedded default

GUIDE = REPO / "docs" / "tutorial.md"
BLOCK = re.compile(r"^```sh (guide-env|guide|guide-background)\n(.*?)^```$", re.M | re.S)
# The embedded default: whatever the surrounding test run points at (CI's PostgreSQL, RabbitMQ) stays out.
UNSET = ("DATABASE_URL", "CATALOG_DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE", "STRANGLER_ROUTES",
         "STRANGLER_OWNERSHIP_FILE", "STRANGLER_PLAN_STATE_DIR", "STRANGLER_PLANS_DIR", "CATALOG_API_TOKENS")


def guide_blocks() -> list[tuple[str, str]]:
    return [(kind, body) for kind, body in BLOCK.findall(GUIDE.read_text())]


def test_the_guide_has_the_whole_walk():
    kinds = [kind for kind, _ in guide_blocks()]
    assert kinds[0] == "guide-env" and kinds.count("guide-env") == 1 and "guide-background" in kinds
    text = "\n".join(body for _, body in guide_blocks())
    assert text.count("python -m migrations_plan advance catalog") >= 9  # one per step of the plan


class Background:
    def __init__(self, log_dir: Path):
        self.log_dir, self.processes = log_dir, []

    def start(self, line: str, env_block: str, env: dict) -> None:
        log = open(self.log_dir / f"bg{len(self.processes)}.log", "wb")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(["bash", "-c", f"{env_block}\nexec {line}"], cwd=REPO, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append((line, process, log))

    def tails(self) -> str:
        out = []
        for index, (line, process, _) in enumerate(self.processes):
            text = (self.log_dir / f"bg{index}.log").read_text(errors="replace")[-1500:]
            out.append(f"--- {line} (exit {process.poll()}):\n{text}")
        return "\n".join(out)

    def stop(self) -> None:
        for _, process, _ in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _, process, log in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            log.close()


def owners_of(ports: dict[str, int]) -> dict[str, str]:
    """Who owns what, as the monolith and the catalog each say it (ownership lives in each project's database):
    they must agree, epochs too."""
    seen = {}
    for name in ("MONOLITH_PORT", "CATALOG_PORT"):
        answer = requests.get(f"http://127.0.0.1:{ports[name]}/sync/ownership/", timeout=REQUEST_TIMEOUT).json()
        seen[name] = {o["aggregate"]: (o["owner"], o["epoch"]) for o in answer["owners"]}
    assert seen["MONOLITH_PORT"] == seen["CATALOG_PORT"], seen
    return {aggregate: owner for aggregate, (owner, _epoch) in seen["MONOLITH_PORT"].items()}


def test_guide_runs_verbatim_then_the_plan_walks_back(tmp_path):
    var_dir = tmp_path / "var"
    ports = {name: free_port() for name in ("MONOLITH_PORT", "CATALOG_PORT", "PROXY_PORT", "PROXY_ADMIN_PORT")}
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update({k: str(v) for k, v in ports.items()})
    env.update(STRANGLER_VAR_DIR=str(var_dir), USER="guide", PYTHONPATH=str(REPO),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               HOME=str(tmp_path))  # mitmproxy keeps its CA under ~/.mitmproxy
    blocks = guide_blocks()
    env_block = blocks[0][1]
    background = Background(tmp_path)
    try:
        for kind, body in blocks[1:]:
            if kind == "guide-background":
                for line in filter(None, (x.strip() for x in body.splitlines())):
                    background.start(line, env_block, env)
                continue
            done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", f"{env_block}\nset -x\n{body}"], cwd=REPO,
                                  env=env, capture_output=True, text=True, timeout=180)
            print(done.stdout, done.stderr)
            assert done.returncode == 0, (f"guide block failed:\n{body}\n--- output:\n{done.stdout[-4000:]}\n"
                                          f"{done.stderr[-4000:]}\n{background.tails()}")

        # Where the guide leaves the plan: ownership flipped, the retire step rolled back, not frozen.
        state = json.loads((var_dir / "plans" / "catalog.json").read_text())
        assert [s["step"] for s in state["applied"]] == [
            "deploy", "backfill", "verify", "shadow", "canary-10", "canary-50", "reads-to-service", "flip-ownership"]
        assert state["frozen"] is None
        assert owners_of(ports) == {"category": "catalog", "product": "catalog"}

        def plan(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "migrations_plan", *args], cwd=REPO, text=True,
                                  capture_output=True, timeout=120, env={**env, **_guide_exports(env_block, env)})

        # Back to the start, step by step (the ownership flip only deliberately).
        assert plan("rollback", "catalog", "--allow-irreversible", "--reason", "walk back").returncode == 0
        assert owners_of(ports) == {"category": "monolith", "product": "monolith"}
        for expected in ("reads-to-service", "canary-50", "canary-10", "shadow", "verify", "backfill", "deploy"):
            done = plan("rollback", "catalog")
            assert done.returncode == 0, done.stderr
            assert done.stdout.startswith(f"catalog: rolled back {expected},"), done.stdout
        expected_routes = DEFAULT_ROUTE_FILE.read_text().replace(
            "127.0.0.1:8000", f"127.0.0.1:{ports['MONOLITH_PORT']}").replace(
            "127.0.0.1:8001", f"127.0.0.1:{ports['CATALOG_PORT']}")
        assert (var_dir / "routes.yaml").read_text() == expected_routes
        assert plan("rollback", "catalog").stderr.strip() == "error: plan catalog has no applied step to roll back"
    finally:
        background.stop()

    os.environ["STRANGLER_PLAN_STATE_DIR"] = str(var_dir / "plans")
    try:
        history = history_read(plan="catalog")
        assert state_load(plan="catalog").position == 0
    finally:
        del os.environ["STRANGLER_PLAN_STATE_DIR"]
    applied = [h["step"] for h in history if h["action"] == "advance" and h["result"] == "applied"]
    assert applied == ["deploy", "backfill", "verify", "shadow", "canary-10", "canary-50", "reads-to-service",
                       "flip-ownership", "retire-monolith-path"]
    assert {h["actor"] for h in history} == {"guide"}
    flip = next(h for h in history if h["step"] == "flip-ownership" and h["result"] == "applied")
    assert {g["kind"]: g["status"] for g in flip["gates"]}["verify"] == "pass"
    # The category written through the service after the flip reached the monolith before the path retired.
    retire = next(h for h in history if h["step"] == "retire-monolith-path" and h["result"] == "applied")
    verify = next(g for g in retire["gates"] if g["kind"] == "verify")
    assert verify["status"] == "pass" and verify["detail"].startswith("category: 23/23 rows, 0 difference(s)")


def _guide_exports(env_block: str, env: dict) -> dict:
    """The values the guide's export block gives, as the walk-back commands need them too."""
    done = subprocess.run(["bash", "-c", f"{env_block}\nenv -0"], cwd=REPO, env=env, capture_output=True, timeout=10)
    pairs = (item.split(b"=", 1) for item in done.stdout.split(b"\0") if b"=" in item)
    return {k.decode(): v.decode() for k, v in pairs}
