"""advance / rollback / freeze on a real route file and ownership file; the lock; nothing is ever half-applied."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from migrations_plan.errors import ActionFailed, GatesBlocked, PlanConflict
from migrations_plan.loader import load_plan
from migrations_plan.services import plan_advance, plan_freeze, plan_rollback, plan_unfreeze, plan_watch
from migrations_plan.state import history_read, state_load
from strangler_proxy.loader import DEFAULT_ROUTE_FILE, load_route_file
from strangler_sync.ownership import ownership_map

from .procs import REPO, plan_cli

PLAN = """\
plan: demo
service: catalog
routes: [/api/products/]
proxy_metrics: http://127.0.0.1:9/metrics
settings: monolith.settings
steps:
  - name: shadow
    kind: shadow
    actions:
      - route: /api/products/
        set: {mode: shadow}
      - route: /api/categories/
        set: {mode: shadow}
    gates: {min_soak_seconds: 0}
  - name: canary
    kind: canary
    actions:
      - route: /api/products/
        set: {mode: canary, weight: 10}
    gates: {min_soak_seconds: 0}
  - name: flip
    kind: flip_ownership
    actions:
      - ownership: {product: catalog}
      - run: ["{python}", "-c", "print('flipped')"]
    gates: {min_soak_seconds: 0}
  - name: retire
    kind: retire
    actions:
      - route: /api/products/
        set: {mode: service, weight: null, fallback: false}
    gates: {min_soak_seconds: 0}
"""


@pytest.fixture
def ownership_file(tmp_path, settings, db):
    """A plan without sync_projects flips in this process's database (the seed file stays absent)."""
    path = tmp_path / "ownership.json"
    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "OWNERSHIP_FILE": str(path)}
    return path


def plan_file(tmp_path, text: str = PLAN):
    path = tmp_path / "demo.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def route(routes_file, prefix: str):
    return next(r for r in load_route_file(routes_file).routes if r.prefix == prefix)


def owners(path) -> dict:
    assert not path.exists()  # only a seed: the flip writes the database
    return ownership_map()


def test_walk_forward_to_the_end_and_back(tmp_path, routes_file, state_dir, ownership_file):
    original = routes_file.read_text()
    plan = load_plan(str(plan_file(tmp_path)), routes=routes_file)
    kw = {"plan": plan, "routes": routes_file, "actor": "alice"}

    done = plan_advance(**kw)
    assert (done["step"], done["position"]) == ("shadow", 1)
    assert route(routes_file, "/api/products/").mode == "shadow" and route(routes_file, "/api/categories/").mode == \
        "shadow"
    assert "# test route file: comments must survive plan edits" in routes_file.read_text()
    plan_advance(**kw)
    assert (route(routes_file, "/api/products/").mode, route(routes_file, "/api/products/").weight) == ("canary", 10)
    plan_advance(**kw)
    assert owners(ownership_file) == {"product": "catalog"}
    plan_advance(**kw)
    retired = route(routes_file, "/api/products/")
    assert (retired.mode, retired.weight, retired.fallback) == ("service", 0, False)
    with pytest.raises(PlanConflict, match="plan demo is finished: all 4 steps are applied"):
        plan_advance(**kw)

    undone = plan_rollback(**kw)
    assert undone["changes"] == ["route /api/products/: mode 'service' -> 'canary', weight None -> 10, "
                                 "fallback False -> True"]
    products = route(routes_file, "/api/products/")
    assert (products.mode, products.weight, products.fallback) == ("canary", 10, True)
    with pytest.raises(PlanConflict, match=r"step flip is not reversible by rollback \(ownership product monolith -> "
                                           r"catalog: writes may already have happened there\); freeze the plan"):
        plan_rollback(**kw)
    assert owners(ownership_file) == {"product": "catalog"} and state_load(plan="demo").position == 3

    plan_freeze(plan=plan, actor="bob", reason="catalog writes misbehave")
    with pytest.raises(PlanConflict, match=r"plan demo is frozen \(by bob: catalog writes misbehave\)"):
        plan_advance(**kw)
    with pytest.raises(PlanConflict, match="is frozen"):
        plan_rollback(**kw, allow_irreversible=True)
    plan_unfreeze(plan=plan, actor="bob")

    plan_rollback(**kw, allow_irreversible=True, reason="flip back after draining")
    assert owners(ownership_file) == {"product": "monolith"}
    plan_rollback(**kw)
    plan_rollback(**kw)
    assert routes_file.read_text() == original  # byte for byte, comments and layout included
    with pytest.raises(PlanConflict, match="no applied step to roll back"):
        plan_rollback(**kw)

    history = history_read(plan="demo")
    assert [(h["action"], h["step"], h["result"]) for h in history] == [
        ("advance", "shadow", "applied"), ("advance", "canary", "applied"), ("advance", "flip", "applied"),
        ("advance", "retire", "applied"), ("rollback", "retire", "rolled_back"), ("freeze", "flip", "frozen"),
        ("unfreeze", "flip", "unfrozen"), ("rollback", "flip", "rolled_back"), ("rollback", "canary", "rolled_back"),
        ("rollback", "shadow", "rolled_back"),
    ]
    assert history[0]["actor"] == "alice" and history[5]["actor"] == "bob"
    assert history[0]["gates"][0]["kind"] == "min_soak_seconds" and history[0]["gates"][0]["status"] == "pass"
    assert history[0]["changes"][0] == {"type": "route", "prefix": "/api/products/", "before": {"mode": "monolith"},
                                        "after": {"mode": "shadow"}}
    assert history[7]["reason"] == "flip back after draining"


def test_a_blocking_gate_changes_nothing_and_says_why(tmp_path, routes_file, state_dir):
    original = routes_file.read_text()
    plan = load_plan(str(plan_file(tmp_path, PLAN.replace("min_soak_seconds: 0", "min_soak_seconds: 3600", 1))),
                     routes=routes_file)
    with pytest.raises(GatesBlocked, match=r"demo: step shadow not applied: min_soak_seconds waiting "
                                           r"\(seconds since this step began\)"):
        plan_advance(plan=plan, routes=routes_file, actor="alice")
    assert routes_file.read_text() == original
    assert state_load(plan="demo") is None
    (entry,) = history_read(plan="demo")
    assert (entry["action"], entry["result"], entry["gates"][0]["status"]) == ("advance", "refused", "waiting")


def test_a_failing_second_action_undoes_the_first(tmp_path, routes_file, state_dir):
    original = routes_file.read_text()
    text = PLAN.replace("      - route: /api/categories/\n        set: {mode: shadow}",
                        "      - run: [\"{python}\", \"-c\", \"import sys; print('disk full', file=sys.stderr); "
                        "sys.exit(3)\"]")
    plan = load_plan(str(plan_file(tmp_path, text)), routes=routes_file)
    with pytest.raises(ActionFailed) as caught:
        plan_advance(plan=plan, routes=routes_file, actor="alice")
    message = str(caught.value)
    assert message.startswith("step shadow: action 2 (run ")
    assert message.endswith("exit 3: disk full; undid the 1 earlier action(s)")
    assert routes_file.read_text() == original
    assert state_load(plan="demo") is None
    assert history_read(plan="demo")[-1]["result"] == "failed"


def test_an_edit_the_proxy_would_reject_is_never_written(tmp_path, routes_file, state_dir):
    plan = load_plan(str(plan_file(tmp_path)), routes=routes_file)
    # After the plan was checked, someone drops the route's service: shadow mode needs one.
    products = "    mode: monolith\n    service: catalog\n    fallback: true\n    timeout: 5"
    edited = routes_file.read_text().replace(products, products.replace("    service: catalog\n", ""))
    routes_file.write_text(edited)
    with pytest.raises(ActionFailed, match=r"would make the route file invalid, not written: .*routes.yaml:\d+: "
                                           r"routes\[0\].service: required in shadow mode; nothing was applied"):
        plan_advance(plan=plan, routes=routes_file, actor="alice")
    assert routes_file.read_text() == edited


def test_the_packaged_route_file_is_never_edited(tmp_path, state_dir):
    before = DEFAULT_ROUTE_FILE.read_bytes()
    plan = load_plan(str(plan_file(tmp_path, PLAN.replace("/api/categories/", "/api/products/"))),
                     routes=DEFAULT_ROUTE_FILE)
    with pytest.raises(PlanConflict, match="refusing to edit the packaged route file"):
        plan_advance(plan=plan, routes=DEFAULT_ROUTE_FILE, actor="alice")
    assert DEFAULT_ROUTE_FILE.read_bytes() == before


def test_two_advances_at_once_apply_one_step(tmp_path, routes_file, state_dir):
    # The first action takes 2 s, so both processes are inside `advance` at the same time.
    text = PLAN.replace("    actions:\n      - route: /api/products/\n        set: {mode: shadow}",
                        "    actions:\n      - run: [\"{python}\", \"-c\", \"import time; time.sleep(2)\"]\n"
                        "      - route: /api/products/\n        set: {mode: shadow}", 1)
    path = plan_file(tmp_path, text)
    env = {"STRANGLER_PLAN_STATE_DIR": str(state_dir), "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "migrations_plan", "advance", str(path), "--routes", str(routes_file)]
    racers = [subprocess.Popen([*argv, "--actor", f"racer{i}"], cwd=REPO, env={**os.environ, **env},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    results = [(p.wait(timeout=60), p.stdout.read(), p.stderr.read()) for p in racers]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1], results
    loser = next(err for code, _, err in results if code == 1)
    assert loser.strip().startswith("error: another plan command is running (pid ")
    assert loser.strip().endswith("nothing was changed")
    assert state_load(plan="demo").position == 1
    assert [h["result"] for h in history_read(plan="demo")] == ["applied"]
    assert route(routes_file, "/api/products/").mode == "shadow"


def test_cli_status_advance_and_refusals(tmp_path, routes_file, state_dir):
    path = plan_file(tmp_path, PLAN.replace("min_soak_seconds: 0", "min_soak_seconds: 3600", 1))
    env = {"STRANGLER_PLAN_STATE_DIR": str(state_dir)}
    status = plan_cli("status", str(path), "--routes", str(routes_file), env=env)
    assert status.returncode == 0, status.stderr
    assert "demo: step 0/4" in status.stdout
    assert "WAITING min_soak_seconds = " in status.stdout and "(needs >= 3600)" in status.stdout
    refused = plan_cli("plan", "advance", str(path), "--routes", str(routes_file), env=env)
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        "error: demo: step shadow not applied: min_soak_seconds waiting (seconds since this step began)"]
    as_json = json.loads(plan_cli("status", str(path), "--routes", str(routes_file), "--json", env=env).stdout)
    assert as_json[0]["next"] == "shadow" and as_json[0]["gates"][0]["status"] == "waiting"
    frozen = plan_cli("freeze", str(path), "--routes", str(routes_file), "--reason", "incident 42", env=env)
    assert frozen.returncode == 0
    again = plan_cli("advance", str(path), "--routes", str(routes_file), env=env)
    assert again.returncode == 1 and "is frozen (by " in again.stderr and "incident 42" in again.stderr
    history = plan_cli("history", "demo", "--routes", str(routes_file), env=env)
    assert "advance shadow: refused" in history.stdout and "freeze -: frozen (incident 42)" in history.stdout


def test_watch_freezes_a_step_it_cannot_roll_back(tmp_path, routes_file, state_dir, ownership_file):
    # The catalog upstream of the test route file is a closed port: the watch gate `healthy` fails for real.
    text = PLAN.replace("      - run: [\"{python}\", \"-c\", \"print('flipped')\"]\n    gates: {min_soak_seconds: 0}",
                        "    gates: {min_soak_seconds: 0}\n    watch: {healthy: [catalog]}")
    plan = load_plan(str(plan_file(tmp_path, text)), routes=routes_file)
    kw = {"plan": plan, "routes": routes_file, "actor": "watcher"}
    for _ in range(3):
        plan_advance(**kw)
    lines = []
    done = plan_watch(**kw, interval=0.1, max_seconds=5, report=lines.append)
    assert (done["outcome"], done["step"]) == ("frozen", "flip")
    assert done["reason"] == "watch: FAIL    healthy = 1 (needs <= 0): catalog ConnectionError"
    state = state_load(plan="demo")
    assert state.position == 3 and state.frozen["reason"].endswith("(step not reversible)")
    assert owners(ownership_file) == {"product": "catalog"}  # frozen, not flipped back
    assert history_read(plan="demo")[-1]["action"] == "watch-freeze"
    with pytest.raises(PlanConflict, match="is frozen"):
        plan_watch(**kw, interval=0.1, max_seconds=1)


def test_an_unreadable_state_file_is_refused_not_guessed(tmp_path, routes_file, state_dir):
    path = plan_file(tmp_path)
    state_dir.mkdir(parents=True)
    (state_dir / "demo.json").write_text('{"plan": "demo", "applied": [')
    done = plan_cli("advance", str(path), "--routes", str(routes_file),
                    env={"STRANGLER_PLAN_STATE_DIR": str(state_dir)})
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: {state_dir / 'demo.json'}: unreadable plan state (JSONDecodeError")
    assert len(done.stderr.strip().splitlines()) == 1
