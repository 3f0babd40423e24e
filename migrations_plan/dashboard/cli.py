"""``strangler-dashboard`` (or ``python -m migrations_plan.dashboard``): serve the migration dashboard.

    strangler-dashboard --stack var/demo/stack.json          # everything from the running demo
    strangler-dashboard --routes strangler_proxy/routes.yaml --proxy-admin http://127.0.0.1:8081 \\
        --sync-project monolith=http://127.0.0.1:8000 --sync-project catalog=http://127.0.0.1:8001 \\
        [--metrics NAME=URL] [--plan catalog] [--port 8795] [--refresh 10]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from pathlib import Path

from migrations_plan.dashboard.gate_history import GateHistory
from migrations_plan.dashboard.selectors import dashboard_snapshot
from migrations_plan.dashboard.server import DashboardServer
from servicekit.cli_parser import OneLineErrorParser
from strangler_proxy.loader import RouteFileError, load_route_file, route_file_path


def _pair(value: str) -> tuple[str, str]:
    name, sep, target = value.partition("=")
    if not sep or not name or not target:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {value!r}")
    return name, target


def stack_defaults(path: str) -> dict:
    """Sources named by the demo's stack.json (routes, proxy admin, every project); options given win."""
    state = json.loads(Path(path).read_text(encoding="utf-8"))
    projects: dict[str, str] = state.get("projects", {})
    return {
        "routes": state["routes_file"],
        "proxy_admin": state["proxy_admin"],
        "sync_projects": dict(projects),  # each project's base URL: its /sync/relay/ answers the outbox numbers
        "metrics": {name: f"{url}/metrics" for name, url in projects.items()},
        # the plans read the admin URL from here (and their state from the demo's var dir)
        "env": {"STRANGLER_VAR_DIR": state["var_dir"], "STRANGLER_PROXY_ADMIN_URL": state["proxy_admin"]},
    }


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="strangler-dashboard", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", metavar="FILE", help="the running demo's var/demo/stack.json: every source below")
    parser.add_argument("--routes", metavar="FILE", help="route file (default: $STRANGLER_ROUTES or the packaged one)")
    parser.add_argument("--proxy-admin", default=None, metavar="URL",
                        help="the proxy's admin base URL (/metrics, /diffs; default http://127.0.0.1:8081)")
    parser.add_argument("--sync-project", action="append", type=_pair, default=[], metavar="NAME=URL",
                        help="a project whose outbox and dead letters are shown (its base URL, read at "
                             "/sync/relay/; repeatable)")
    parser.add_argument("--metrics", action="append", type=_pair, default=[], metavar="NAME=URL",
                        help="a project's /metrics URL (repeatable)")
    parser.add_argument("--plan", action="append", default=None, metavar="NAME",
                        help="plans to show (default: every plan in the plans directory)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8795)
    # Each snapshot asks every source over HTTP (outbox counts are database aggregates): not every second.
    parser.add_argument("--refresh", type=int, default=10, metavar="SECONDS", help="page auto-refresh interval")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stack: dict = {}
    if args.stack:
        try:
            stack = stack_defaults(args.stack)
        except (OSError, ValueError, KeyError) as exc:
            print(f"strangler-dashboard: error: {args.stack}: not a readable stack file ({exc})", file=sys.stderr)
            return 2
        for name, value in stack["env"].items():
            os.environ.setdefault(name, value)
    routes = route_file_path(args.routes or stack.get("routes"))
    try:  # refuse a route file that does not load now rather than serve a page of errors
        load_route_file(routes)
    except RouteFileError as exc:
        print(f"strangler-dashboard: error: {exc}", file=sys.stderr)
        return 2
    snapshot = functools.partial(
        dashboard_snapshot, routes=routes,
        proxy_admin=(args.proxy_admin or stack.get("proxy_admin") or "http://127.0.0.1:8081").rstrip("/"),
        sync_projects=dict(args.sync_project) or stack.get("sync_projects", {}),
        metrics=dict(args.metrics) or stack.get("metrics", {}), plans=args.plan,
    )
    history = GateHistory()  # each gate's values over its step's window, for the page's sparklines
    take = lambda: history.record(snapshot())  # noqa: E731
    try:
        server = DashboardServer(take_snapshot=take, host=args.host, port=args.port, refresh_seconds=args.refresh)
    except OSError as exc:
        print(f"strangler-dashboard: error: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 2
    print(f"strangler-dashboard: http://{args.host}:{server.port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
