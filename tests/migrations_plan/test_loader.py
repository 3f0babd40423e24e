"""Plan files parse into typed specs; anything unknown or impossible is refused with file, line and reason."""

from __future__ import annotations

import textwrap

import pytest

from migrations_plan.errors import PlanFileError
from migrations_plan.loader import load_plan, plan_names
from migrations_plan.spec import CommandAction, OwnershipChange, RouteEdit
from strangler_proxy.loader import DEFAULT_ROUTE_FILE

from .procs import plan_cli

GOOD = """\
plan: demo
service: catalog
routes: [/api/products/]
proxy_metrics: http://127.0.0.1:9/metrics
steps:
  - name: shadow
    kind: shadow
    actions:
      - route: /api/products/
        set: {mode: shadow}
    gates:
      min_soak_seconds: 0
"""


def write_plan(tmp_path, text: str):
    path = tmp_path / "demo.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_shipped_plans_parse(routes_file):
    assert plan_names()[:3] == ["catalog", "inventory", "reviews"]
    for name in ("catalog", "inventory", "reviews"):
        plan = load_plan(name, routes=routes_file)
        assert plan.name == name and len(plan.steps) >= 6
        flips = [s for s in plan.steps if any(isinstance(a, OwnershipChange) for a in s.actions)]
        assert len(flips) == 1 and not flips[0].reversible  # exactly one, non-reversible ownership step
    catalog = load_plan("catalog", routes=DEFAULT_ROUTE_FILE)  # the catalog plan fits the packaged route file
    assert [s.name for s in catalog.steps] == [
        "deploy", "backfill", "verify", "shadow", "canary-10", "canary-50", "reads-to-service", "flip-ownership",
        "retire-monolith-path"]
    backfill = catalog.step("backfill").actions[0]
    assert isinstance(backfill, CommandAction) and "sync_backfill" in backfill.argv  # through the data plane
    canary = catalog.step("canary-10")
    assert canary.actions[0] == RouteEdit(prefix="/api/products/", changes=(("mode", "canary"), ("weight", 10)),
                                          line=canary.actions[0].line)
    assert {g.kind for g in canary.gates} == {"min_shadow_sample", "max_diff_rate", "min_soak_seconds"}
    assert {g.kind for g in canary.watch} == {"max_error_rate_increase", "max_p99_seconds"}


def test_environment_values_and_defaults(tmp_path, routes_file, monkeypatch):
    monkeypatch.setenv("CATALOG_SOAK_SECONDS", "7")
    plan = load_plan("catalog", routes=routes_file)
    soak = next(g for g in plan.step("canary-10").gates if g.kind == "min_soak_seconds")
    assert soak.threshold == 7
    monkeypatch.delenv("CATALOG_SOAK_SECONDS")
    plan = load_plan("catalog", routes=routes_file)
    assert next(g for g in plan.step("canary-10").gates if g.kind == "min_soak_seconds").threshold == 900


@pytest.mark.parametrize(("change", "line", "message"), [
    (("kind: shadow", "kind: teleport"), 7, "steps[0].kind: unknown step kind 'teleport' (one of deploy,"),
    (("route: /api/products/\n", "route: /api/nothing/\n"), 9, "steps[0].actions[0].route: unknown route "
                                                               "'/api/nothing/'"),
    (("routes: [/api/products/]", "routes: [/api/gone/]"), 3, "routes[0]: unknown route '/api/gone/'"),
    (("set: {mode: shadow}", "set: {colour: red}"), 10, "steps[0].actions[0].set.colour: unknown key"),
    (("      - route: /api/products/\n        set: {mode: shadow}",
      "      - deploy: everything"), 9, "steps[0].actions[0].deploy: unknown key"),
    (("      - route: /api/products/\n        set: {mode: shadow}",
      "      - run: [true]\n        set: {mode: shadow}"), 10, "steps[0].actions[0].set: not allowed in a run action"),
    (("min_soak_seconds: 0", "min_soak_seconds: -5"), 12, "steps[0].gates.min_soak_seconds: impossible value -5"),
    (("min_soak_seconds: 0", "max_diff_rate: 1.5"), 12, "steps[0].gates.max_diff_rate: impossible value 1.5: "
                                                        "must be 0..1"),
    (("min_soak_seconds: 0", "max_error_rate_increase: -0.1"), 12, "impossible value -0.1"),
    (("min_soak_seconds: 0", "max_p99_seconds: 0"), 12, "steps[0].gates.max_p99_seconds: impossible value 0"),
    (("min_soak_seconds: 0", "min_shadow_sample: 2.5"), 12, "min_shadow_sample: must be an integer, got 2.5"),
    (("min_soak_seconds: 0", "max_relay_backlog: many"), 12, "max_relay_backlog: must be an integer, got 'many'"),
    (("min_soak_seconds: 0", "healthy: [nobody]"), 12, "steps[0].gates.healthy[0]: unknown upstream 'nobody'"),
    (("min_soak_seconds: 0", "verify: []"), 12, "steps[0].gates.verify: must name at least one aggregate"),
    (("min_soak_seconds: 0", "max_reconcile_clean_age_seconds: 0"), 12,
     "steps[0].gates.max_reconcile_clean_age_seconds: impossible value 0"),
    (("min_soak_seconds: 0", "p50: 1"), 12, "steps[0].gates.p50: unknown key"),
    (("service: catalog", "service: monolith"), 2, "service: unknown service upstream 'monolith'"),
    (("proxy_metrics: http://127.0.0.1:9/metrics", "proxy_metrics: ${NOPE_NOT_SET}"), 4,
     "${NOPE_NOT_SET}: environment variable is not set"),
    (("    gates:\n      min_soak_seconds: 0", "    watch:\n      min_soak_seconds: 0"), 12,
     "steps[0].watch.min_soak_seconds: watch gates are limits"),
    (("set: {mode: shadow}", "set: {service: elsewhere}"), 10, "set.service: unknown upstream 'elsewhere'"),
    (("plan: demo", "plan: demo\nplan: again"), 2, "plan: duplicate key"),
    (("      min_soak_seconds: 0\n", "      min_soak_seconds: 0\n  - name: shadow\n    kind: canary\n"
      "    gates: {min_soak_seconds: 1}\n"), 13, "steps[1].name: duplicate of the step on line 6"),
    (("set: {mode: shadow}", "set: {mode: shadow"), 11, "file: not valid YAML"),
    (("set: {mode: shadow}", "set: {mode: canary}"), 9, "steps[0]: step shadow would make the route file invalid: "
                                                       "routes[0].weight: required in canary mode"),
    (("set: {mode: shadow}", "set: {weight: 5}"), 9, "routes[0].weight: only canary routes have a weight"),
    (("steps:", "sync_projects: [monolith, monolith.settings]\nsteps:"), 5,
     "sync_projects[1]: 'monolith.settings' is neither an upstream of"),
    (("steps:", "workdir: no/such/dir\nsteps:"), 5, "workdir: "),
    (("min_soak_seconds: 0", "coverage: {schema_path: api/schema/}"), 12,
     "steps[0].gates.coverage.schema_path: must be a path starting with '/'"),
    (("min_soak_seconds: 0", "coverage: {monolith: x}"), 12, "steps[0].gates.coverage.monolith: unknown key"),
    (("steps:", "settings: 'monolith settings'\nsteps:"), 5, "settings: invalid value 'monolith settings'"),
    (("      - route: /api/products/\n        set: {mode: shadow}", "      - ownership: {product: catalog}"), 9,
     "steps[0].actions: an ownership action needs the plan's `settings`"),
])
def test_bad_plans_are_refused_with_file_line_and_reason(tmp_path, routes_file, change, line, message):
    old, new = change
    assert old in GOOD
    path = write_plan(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(PlanFileError) as caught:
        load_plan(str(path), routes=routes_file)
    assert str(caught.value).startswith(f"{path}:{line}: "), str(caught.value)
    assert message in str(caught.value)


def test_good_plan_parses(tmp_path, routes_file):
    plan = load_plan(str(write_plan(tmp_path, GOOD)), routes=routes_file)
    assert plan.steps[0].actions == (RouteEdit(prefix="/api/products/", changes=(("mode", "shadow"),), line=9),)


def test_cli_check_prints_one_line_and_exits_2(tmp_path, routes_file):
    path = write_plan(tmp_path, GOOD.replace("kind: shadow", "kind: teleport"))
    done = plan_cli("check", str(path), "--routes", str(routes_file))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {path}:7: steps[0].kind: unknown step kind 'teleport' (one of deploy, backfill, verify, shadow, "
        "canary, cutover, flip_ownership, retire)"]
    ok = plan_cli("check", "catalog", "inventory", "reviews", "--routes", str(routes_file))
    assert ok.returncode == 0 and ok.stdout.count("ok: ") == 3
    missing = plan_cli("plan", "check", "nope", "--routes", str(routes_file))
    assert missing.returncode == 2 and "no such plan file" in missing.stderr


def test_commands_run_in_the_plans_workdir_not_the_callers(tmp_path, routes_file, state_dir):
    """`workdir` is relative to the plan file; without it commands run next to the plan file."""
    from migrations_plan.services import plan_advance

    (tmp_path / "project").mkdir()
    plans = tmp_path / "ops" / "plans"
    plans.mkdir(parents=True)
    run = GOOD.replace("      - route: /api/products/\n        set: {mode: shadow}",
                       "      - run: [\"{python}\", \"-c\", \"open('ran-here', 'w')\"]")
    path = plans / "demo.yaml"
    path.write_text(textwrap.dedent(run.replace("steps:", "workdir: ../../project\nsteps:")))
    plan = load_plan(str(path), routes=routes_file)
    assert plan.workdir == (tmp_path / "project").resolve() and plan.settings is None
    plan_advance(plan=plan, routes=routes_file, actor="t")
    assert (tmp_path / "project" / "ran-here").exists()
    path.write_text(textwrap.dedent(run.replace("plan: demo", "plan: other")))
    plan_advance(plan=load_plan(str(path), routes=routes_file), routes=routes_file, actor="t")
    assert (plans / "ran-here").exists()


def test_plan_route_file_and_state_live_anywhere(tmp_path, routes_file):
    """No --routes, no $STRANGLER_ROUTES, run outside the repository: the plan's route_file and the store URL."""
    import os
    import subprocess
    import sys

    from .procs import REPO

    ops = tmp_path / "ops"
    ops.mkdir()
    (ops / "routes.yaml").write_text(routes_file.read_text())
    (ops / "demo.yaml").write_text(textwrap.dedent(GOOD.replace("steps:", "route_file: routes.yaml\nsteps:")))
    env = {k: v for k, v in os.environ.items() if k not in ("STRANGLER_ROUTES", "STRANGLER_PLAN_STATE_DIR")}
    env.update(PYTHONPATH=str(REPO), STRANGLER_PLAN_STORE=f"file://{tmp_path}/state")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    done = subprocess.run([sys.executable, "-m", "migrations_plan", "advance", str(ops / "demo.yaml")], cwd=elsewhere,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "mode: shadow" in (ops / "routes.yaml").read_text()  # the plan's own route file was edited
    assert (tmp_path / "state" / "demo.json").exists() and not list(elsewhere.iterdir())
    plan = load_plan(str(ops / "demo.yaml"), routes=routes_file)  # --routes wins over the plan's route_file
    assert plan.route_file == routes_file
