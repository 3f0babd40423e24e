"""``strangler-replay``: replay recorded traffic against the monolith and a service, report the differences.

    strangler-replay var/proxy/record.jsonl --monolith http://127.0.0.1:8000 --service http://127.0.0.1:8001 \\
        [--routes strangler_proxy/routes.yaml] [--host shop.test] [--out var/replay] [--allow-unsafe] [--workers N]

Only requests that a route of the route file sends to a service are replayed (strangler_proxy's own routing
decision); the others are counted as ``skipped_not_routed``.

Exit status: 0 no differences, 1 differences or failed requests, 2 bad input (file, line, base URL).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

from tqdm import tqdm

from migrations_plan.regression.compare import SideBySide, SideBySideError
from migrations_plan.regression.replay import replay_run
from migrations_plan.regression.report import report_html
from migrations_plan.regression.requests_file import RequestsFileError, requests_read
from migrations_plan.route_targets import route_service
from servicekit.cli_parser import OneLineErrorParser
from strangler_proxy.fetch import UpstreamClient, UpstreamError
from strangler_proxy.loader import RouteFileError, load_route_file


class BadInput(Exception):
    """One line for the user; exit 2."""


def _base_url(value: str, name: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise BadInput(f"--{name}: expected a base URL like http://127.0.0.1:8000, got {value!r}")
    return value.rstrip("/")


def _reachable(client: UpstreamClient, url: str, name: str, timeout: float) -> None:
    """Fail fast on a base URL nobody answers, instead of counting every request as an error."""
    try:
        client.fetch(base_url=url, method="GET", path="/healthz", timeout=timeout)
    except UpstreamError as exc:
        raise BadInput(f"{name} is unreachable: {exc}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="strangler-replay", description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="recording (JSON lines from strangler-proxy --record) or 'METHOD /path' lines")
    parser.add_argument("--monolith", required=True, metavar="URL", help="monolith base URL")
    parser.add_argument("--service", required=True, metavar="URL", help="service base URL")
    parser.add_argument("--routes", metavar="FILE", help="route file with the diff rules (default: $STRANGLER_ROUTES "
                        "or strangler_proxy/routes.yaml)")
    parser.add_argument("--route", metavar="PREFIX", help="use this route's rules for every request")
    parser.add_argument("--host", help="Host header sent to both sides (default: each side's host:port)")
    parser.add_argument("--out", default="var/replay", metavar="DIR", help="where summary.json and report.html go")
    parser.add_argument("--allow-unsafe", action="store_true", help="also replay POST/PUT/PATCH/DELETE (writes!)")
    parser.add_argument("--no-learn-noise", action="store_true", help="do not call the monolith a second time")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="requests in flight at once (default 1; safe methods only)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.workers < 1:
            raise BadInput("--workers: must be at least 1")
        if args.workers > 1 and args.allow_unsafe:
            raise BadInput("--allow-unsafe replays writes in their recorded order: it needs --workers 1")
        monolith, service = _base_url(args.monolith, "monolith"), _base_url(args.service, "service")
        recorded = requests_read(path=args.file)
        table = load_route_file(args.routes)
        # Only what some route sends to a service is a migration's business (not /healthz, not the monolith's pages).
        requests = [r for r in recorded if route_service(table, method=r.method, path=r.path) is not None]
        if not requests:
            raise BadInput(f"{args.file}: none of its {len(recorded)} requests is sent to a service by a route of "
                           f"{table.source}")
        comparer = SideBySide(table=table, monolith_url=monolith, service_url=service, route_prefix=args.route,
                              host=args.host, timeout=args.timeout, learn_noise=not args.no_learn_noise)
        _reachable(comparer.client, monolith, "monolith", min(args.timeout, 5.0))
        _reachable(comparer.client, service, "service", min(args.timeout, 5.0))
    except (BadInput, RequestsFileError, RouteFileError, SideBySideError) as exc:
        print(f"strangler-replay: error: {exc}", file=sys.stderr)
        return 2
    with tqdm(total=len(requests), desc="replay", unit="req", disable=args.quiet, file=sys.stderr) as bar:
        summary = replay_run(comparer=comparer, requests=requests, allow_unsafe=args.allow_unsafe,
                             progress=lambda: bar.update(1), workers=args.workers)
    summary["requests"] = len(recorded)
    summary["skipped_not_routed"] = len(recorded) - len(requests)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n")
    (out / "report.html").write_text(report_html(summary), encoding="utf-8")
    skipped = sum(summary["skipped_unsafe"].values())
    rate = "–" if summary["diff_rate"] is None else f"{summary['diff_rate'] * 100:.1f}%"
    print(f"{summary['requests']} requests: {summary['compared']} compared, {summary['differing']} differing "
          f"({rate}), {summary['errors']} errors, {skipped} unsafe skipped, "
          f"{summary['skipped_not_routed']} sent to no service skipped")
    for endpoint in summary["endpoints"]:
        if endpoint["differing"] or endpoint["errors"]:
            worst = ", ".join(f["path"] for f in endpoint["worst_fields"][:3])
            print(f"  {endpoint['endpoint']}: {endpoint['differing']}/{endpoint['compared']} differ, "
                  f"{endpoint['errors']} errors{'; worst: ' + worst if worst else ''}")
    print(f"summary: {out / 'summary.json'}\nreport:  {out / 'report.html'}")
    return 1 if summary["differing"] or summary["errors"] else 0
