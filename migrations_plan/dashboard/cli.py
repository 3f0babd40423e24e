"""``strangler-dashboard`` (or ``python -m migrations_plan.dashboard``): serve the migration dashboard.

    strangler-dashboard --routes strangler_proxy/routes.yaml --proxy-admin http://127.0.0.1:8081 \\
        --sync-project monolith=monolith.settings --sync-project catalog=extracted.catalog.settings \\
        [--metrics NAME=URL] [--plan catalog] [--port 8795] [--refresh 5]
"""

from __future__ import annotations

import argparse
import functools
import sys

from migrations_plan.dashboard.selectors import dashboard_snapshot
from migrations_plan.dashboard.server import DashboardServer
from strangler_proxy.loader import route_file_path


def _pair(value: str) -> tuple[str, str]:
    name, sep, target = value.partition("=")
    if not sep or not name or not target:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {value!r}")
    return name, target


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="strangler-dashboard", description=__doc__.split("\n\n")[0])
    parser.add_argument("--routes", metavar="FILE", help="route file (default: $STRANGLER_ROUTES or the packaged one)")
    parser.add_argument("--proxy-admin", default="http://127.0.0.1:8081", metavar="URL",
                        help="the proxy's admin base URL (/metrics, /diffs)")
    parser.add_argument("--sync-project", action="append", type=_pair, default=[], metavar="NAME=SETTINGS",
                        help="a project whose outbox and dead letters are shown (its settings module; repeatable)")
    parser.add_argument("--metrics", action="append", type=_pair, default=[], metavar="NAME=URL",
                        help="a project's /metrics URL (repeatable)")
    parser.add_argument("--plan", action="append", default=None, metavar="NAME",
                        help="plans to show (default: every plan in the plans directory)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8795)
    parser.add_argument("--refresh", type=int, default=5, metavar="SECONDS", help="page auto-refresh interval")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    take = functools.partial(
        dashboard_snapshot, routes=route_file_path(args.routes), proxy_admin=args.proxy_admin.rstrip("/"),
        sync_projects=dict(args.sync_project), metrics=dict(args.metrics), plans=args.plan,
    )
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
