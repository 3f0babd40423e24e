"""The demo's layout: its route file (valid, kept across restarts, new services added) and the projects' links."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from demo.stack import MONOLITH, SERVICES, Stack, routes_file_ensure, stack_build
from strangler_proxy.loader import load_route_file
from strangler_proxy.routing import RequestInfo, decide

ROOT = Path(__file__).resolve().parent.parent


def _stack(var: Path, *, offset: int = 0, services: tuple[str, ...] = ("catalog", "inventory", "reviews")) -> Stack:
    return Stack(var_dir=var, port_offset=offset, projects=[MONOLITH, *(s for s in SERVICES if s.name in services)])


def _decide(path: Path, method: str, target: str):
    return decide(load_route_file(path), RequestInfo(method=method, path=target, headers={}, cookies={},
                                                     client_addr="127.0.0.1"), override_secret=None)


def test_first_route_file_is_valid_and_routes_catalog_reads_only(tmp_path):
    stack = _stack(tmp_path, offset=100)
    assert routes_file_ensure(stack) == "created"
    table = load_route_file(stack.routes_path)
    assert {u.name: u.url for u in table.upstreams.values()} == {
        "monolith": "http://127.0.0.1:8100", "catalog": "http://127.0.0.1:8101",
        "inventory": "http://127.0.0.1:8102", "reviews": "http://127.0.0.1:8103"}
    assert _decide(stack.routes_path, "GET", "/api/products/?page=2").primary == "catalog"
    assert _decide(stack.routes_path, "GET", "/api/categories/3/").primary == "catalog"
    assert _decide(stack.routes_path, "POST", "/api/products/").primary == "monolith"
    assert _decide(stack.routes_path, "GET", "/api/products/7/rating/").primary == "monolith"
    # the other services' routes wait in mode monolith for their plans
    for target in ("/api/stock/", "/api/reservations/", "/api/reviews/"):
        decision = _decide(stack.routes_path, "GET", target)
        assert decision.primary == "monolith" and decision.route is not None and decision.route.service


def test_restart_keeps_edited_routes_and_refreshes_ports(tmp_path):
    stack = _stack(tmp_path)
    routes_file_ensure(stack)
    document = yaml.safe_load(stack.routes_path.read_text())
    document["routes"][0].update(mode="canary", weight=25)
    stack.routes_path.write_text(yaml.safe_dump(document))
    assert routes_file_ensure(stack) == "kept"
    assert routes_file_ensure(_stack(tmp_path, offset=500)) == "upstreams updated"
    again = yaml.safe_load(stack.routes_path.read_text())
    assert again["routes"] == document["routes"]
    assert again["upstreams"]["catalog"] == {"url": "http://127.0.0.1:8501", "health_path": "/healthz"}
    assert load_route_file(stack.routes_path).routes[0].weight == 25


def test_a_service_that_joins_later_gets_its_upstream_and_routes(tmp_path):
    routes_file_ensure(_stack(tmp_path, services=("catalog",)))
    before = yaml.safe_load((tmp_path / "demo/routes.yaml").read_text())["routes"]
    assert routes_file_ensure(_stack(tmp_path)) == "upstreams updated"
    after = yaml.safe_load((tmp_path / "demo/routes.yaml").read_text())["routes"]
    assert after[:len(before)] == before
    assert {r["prefix"] for r in after[len(before):]} == {"/api/stock/", "/api/reservations/", "/api/reviews/"}
    load_route_file(tmp_path / "demo/routes.yaml")


def test_projects_are_pointed_at_each_other_on_shifted_ports(tmp_path):
    stack = _stack(tmp_path, offset=1000)
    monolith_env = stack.project_env(MONOLITH)
    inventory = next(s for s in SERVICES if s.name == "inventory")
    reviews = next(s for s in SERVICES if s.name == "reviews")
    assert monolith_env["INVENTORY_SERVICE_URL"] == "http://127.0.0.1:9002"
    assert monolith_env["INVENTORY_SERVICE_TOKEN"] == stack.project_env(inventory)["INVENTORY_API_TOKENS"]
    assert len(monolith_env["INVENTORY_SERVICE_TOKEN"]) >= 24
    assert stack.project_env(reviews)["DJANGO_SETTINGS_MODULE"] == "extracted.reviews.settings"


def test_every_service_of_the_checkout_is_in_the_demo():
    present = [p.name for p in stack_build(var_dir=ROOT / "var").projects]
    on_disk = sorted(p.parent.name for p in (ROOT / "extracted").glob("*/manage.py"))
    assert present[0] == "monolith" and sorted(present[1:]) == on_disk


def test_every_migration_plan_can_walk_the_demo_route_file(tmp_path):
    """The control plane drives the running demo: each plan's routes must be in the file the demo makes."""
    stack = stack_build(var_dir=tmp_path)
    routes_file_ensure(stack)
    plans = sorted(p.stem for p in (ROOT / "migrations_plan/plans").glob("*.yaml"))
    assert plans
    result = subprocess.run(
        [sys.executable, "-m", "migrations_plan", "check", "--routes", str(stack.routes_path), *plans],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "STRANGLER_VAR_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_nginx_plane_runs_the_follower_its_exporter_and_the_diff_endpoint_on_shifted_ports(tmp_path):
    """`--plane nginx`: the route file mirrors to the shifted diff endpoint, the plans read the exporter and the
    diff endpoint (their gate source parses), and every port is checked free before the start."""
    from strangler_proxy.cli import build_parser

    stack = Stack(var_dir=tmp_path, port_offset=100, projects=[MONOLITH, SERVICES[0]], plane="nginx")
    routes_file_ensure(stack)
    assert load_route_file(stack.routes_path).settings.diff_endpoint == "127.0.0.1:8890"
    commands = stack.proxy_commands()
    assert set(commands) == {"proxy", "proxy-metrics", "diff-endpoint"}
    for name in ("proxy", "proxy-metrics"):
        argv, _ = commands[name]
        build_parser().parse_args(argv[3:])  # a real strangler-proxy command line (exits on an unknown option)
    assert commands["proxy"][1] == "http://127.0.0.1:8180/healthz"
    assert yaml.safe_load(stack.proxy_metrics) == ["http://127.0.0.1:8181/metrics", "http://127.0.0.1:8890/metrics"]
    assert {8180, 8181, 8182, 8890} <= set(stack.ports)
    # a demo first run on mitmproxy keeps its file; the nginx plane's diff endpoint port is brought up to date
    mitm = Stack(var_dir=tmp_path / "m", port_offset=0, projects=[MONOLITH, SERVICES[0]])
    routes_file_ensure(mitm)
    moved = Stack(var_dir=tmp_path / "m", port_offset=5, projects=[MONOLITH, SERVICES[0]], plane="nginx")
    assert routes_file_ensure(moved) == "upstreams updated"
    assert load_route_file(moved.routes_path).settings.diff_endpoint == "127.0.0.1:8795"
