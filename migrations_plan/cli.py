"""`strangler-plan` / `python -m migrations_plan`: status, advance, rollback, freeze, unfreeze, watch, check, history,
scaffold.

A leading `plan` word is accepted too (`strangler-plan plan advance catalog`). Errors are one line on stderr
with a non-zero exit: 2 for bad input (plan file, arguments), 1 when the plan cannot move (gates, frozen,
finished, locked, an action failed), 3 when `watch` rolled back or froze the plan.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime

from migrations_plan.errors import PlanError
from migrations_plan.loader import load_plan, plan_names
from servicekit.cli_parser import OneLineErrorParser
from strangler_proxy.loader import ROUTES_ENV


def _actor(args: argparse.Namespace) -> str:
    return args.actor or os.environ.get("USER") or os.environ.get("LOGNAME") or "unknown"


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def cmd_status(args: argparse.Namespace) -> int:
    from migrations_plan.selectors import plan_status

    statuses, failures = [], []
    for name in args.plans or plan_names():
        try:
            plan = load_plan(name, routes=args.routes)
            statuses.append(plan_status(plan=plan, routes=plan.route_file))
        except PlanError as exc:
            if args.plans:  # asked for by name: its error is the answer
                raise
            failures.append(f"{name}: cannot load: {exc}")  # listing all: say so and show the others
    for failure in failures:
        print(failure, file=sys.stderr)
    if args.json:
        print(json.dumps(statuses, indent=2))
        return 2 if failures else 0
    for status in statuses:
        total = len(status["steps"])
        where = f"step {status['position']}/{total}" + (f" ({status['current']})" if status["current"] else "")
        print(f"{status['plan']}: {where}, since {_when(status['entered_at'])}"
              + (", FINISHED" if status["finished"] else "")
              + (f", FROZEN by {status['frozen']['by']}: {status['frozen']['reason']}" if status["frozen"] else ""))
        for index, step in enumerate(status["steps"], start=1):
            mark = "x" if step["applied"] else ">" if step["name"] == status["next"] else " "
            note = "" if step["reversible"] else "  (not reversible)"
            print(f"  [{mark}] {index}. {step['name']:<20} {step['description']}{note}")
        if status["next"]:
            print(f"  gates of {status['next']}:" + ("" if status["gates"] else " none"))
            for gate in status["gates"]:
                print("    " + _gate_line(gate))
        if status["watch"]:
            print(f"  watch of {status['current']}:")
            for gate in status["watch"]:
                print("    " + _gate_line(gate))
    return 2 if failures else 0


def _gate_line(gate: dict) -> str:
    from migrations_plan.gates import GateResult

    return GateResult(**gate).line()


def cmd_advance(args: argparse.Namespace) -> int:
    from migrations_plan.services import plan_advance_when_ready

    plan = load_plan(args.plan, routes=args.routes)
    done = plan_advance_when_ready(plan=plan, routes=plan.route_file, actor=_actor(args), wait_seconds=args.wait)
    print(f"{done['plan']}: applied step {done['position']} ({done['step']})")
    for gate in done["gates"]:
        print("  " + _gate_line(gate))
    for change in done["changes"]:
        print(f"  {change}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from migrations_plan.services import plan_rollback

    plan = load_plan(args.plan, routes=args.routes)
    done = plan_rollback(plan=plan, routes=plan.route_file, actor=_actor(args), reason=args.reason or "",
                         allow_irreversible=args.allow_irreversible)
    print(f"{done['plan']}: rolled back {done['step']}, now at step {done['position']}")
    for change in done["changes"]:
        print(f"  {change}")
    return 0


def cmd_freeze(args: argparse.Namespace) -> int:
    from migrations_plan.services import plan_freeze

    done = plan_freeze(plan=load_plan(args.plan, routes=args.routes), actor=_actor(args), reason=args.reason)
    print(f"{done['plan']}: frozen ({args.reason})")
    return 0


def cmd_unfreeze(args: argparse.Namespace) -> int:
    from migrations_plan.services import plan_unfreeze

    done = plan_unfreeze(plan=load_plan(args.plan, routes=args.routes), actor=_actor(args), reason=args.reason or "")
    print(f"{done['plan']}: unfrozen")
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    from migrations_plan.services import plan_watch

    plan = load_plan(args.plan, routes=args.routes)
    done = plan_watch(plan=plan, routes=plan.route_file, actor=_actor(args), interval=args.interval,
                      max_seconds=args.max_seconds, report=lambda line: print(line, flush=True))
    if done["outcome"] == "held":
        print(f"{done['plan']}: {done['reason']}")
        return 0
    print(f"{done['plan']}: {done['outcome'].replace('_', ' ')} {done['step']}: {done['reason']}")
    return 3


def cmd_schema(args: argparse.Namespace) -> int:
    from migrations_plan.schema import plan_file_schema
    from strangler_proxy.cli import schema_print
    from strangler_proxy.schema import schema_text

    return schema_print(schema_text(plan_file_schema()), out=args.out)


def cmd_check(args: argparse.Namespace) -> int:
    for name in args.plans or plan_names():
        plan = load_plan(name, routes=args.routes)
        print(f"ok: {plan.source}: plan {plan.name}, {len(plan.steps)} steps")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from migrations_plan.state import history_read

    for entry in history_read(plan=args.plan)[-args.last:]:
        if args.json:
            print(json.dumps(entry, sort_keys=True))
            continue
        print(f"{entry['at']} {entry['actor']} {entry['plan']} {entry['action']} {entry['step'] or '-'}: "
              f"{entry['result']}" + (f" ({entry['reason']})" if entry["reason"] else ""))
    return 0


def cmd_scaffold(args: argparse.Namespace) -> int:
    from pathlib import Path

    from migrations_plan.scaffold import scaffold_parse, scaffold_write

    scaffold = scaffold_parse(service=args.service, path=args.path, aggregate=args.aggregate, settings=args.settings,
                              project_dir=Path(args.project_dir).resolve(), out=Path(args.out).resolve(),
                              routes=Path(args.routes).resolve() if args.routes else None,
                              service_url=args.service_url.rstrip("/"), monolith_url=args.monolith_url.rstrip("/"))
    for path in scaffold_write(scaffold=scaffold):
        print(f"wrote {path}")
    print(f"next: cd {scaffold.out / scaffold.service} && python manage.py check && python manage.py migrate; "
          f"then strangler-plan check {scaffold.out / 'plans' / (scaffold.service + '.yaml')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="strangler-plan", description=__doc__.splitlines()[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--routes", metavar="FILE", default=None,
                        help=f"route file the proxy reads (default: ${ROUTES_ENV}, else the plan's route_file, "
                             "else strangler_proxy/routes.yaml)")
    common.add_argument("--actor", default=None, help="who is acting (default: $USER), written to the history")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("status", parents=[common], help="where each plan stands and its gate values now")
    p.add_argument("plans", nargs="*", metavar="PLAN")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("advance", parents=[common], help="apply the next step if its gates pass")
    p.add_argument("plan")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="re-check the gates every second for up to this long before refusing")
    p.set_defaults(func=cmd_advance)

    p = sub.add_parser("rollback", parents=[common], help="undo the last step's actions in reverse order")
    p.add_argument("plan")
    p.add_argument("--reason", default="")
    p.add_argument("--allow-irreversible", action="store_true",
                   help="also undo an ownership flip (only once the relays are drained)")
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("freeze", parents=[common], help="stop moving the plan without rolling back")
    p.add_argument("plan")
    p.add_argument("--reason", required=True)
    p.set_defaults(func=cmd_freeze)

    p = sub.add_parser("unfreeze", parents=[common], help="let the plan move again")
    p.add_argument("plan")
    p.add_argument("--reason", default="")
    p.set_defaults(func=cmd_unfreeze)

    p = sub.add_parser("watch", parents=[common], help="check the current step's watch gates; roll back on failure")
    p.add_argument("plan")
    p.add_argument("--interval", type=float, default=5.0, metavar="SECONDS")
    p.add_argument("--max-seconds", type=float, default=600.0, metavar="SECONDS")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("check", parents=[common], help="parse plan files (exit 2 with file:line: field: reason)")
    p.add_argument("plans", nargs="*", metavar="PLAN")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("schema", help="print the plan file's JSON Schema (editors can validate plan files with it)")
    p.add_argument("--out", metavar="FILE", help="write it to FILE instead (the committed copy: "
                                                 "migrations_plan/plan-file.schema.json)")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("history", parents=[common], help="print the history log")
    p.add_argument("plan", nargs="?")
    p.add_argument("--last", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_history)
    p = sub.add_parser("scaffold", parents=[common],
                       help="write a route entry, a plan and a service project for one path and aggregate")
    p.add_argument("--service", required=True, help="the new service's name (upstream, project, plan)")
    p.add_argument("--path", required=True, metavar="PREFIX", help="the monolith's path prefix it takes over")
    p.add_argument("--aggregate", required=True, metavar="NAME=APP_LABEL.MODEL",
                   help="the aggregate it syncs and the monolith's model behind it (e.g. invoice=billing.Invoice)")
    p.add_argument("--settings", required=True, metavar="MODULE", help="the monolith's Django settings module")
    p.add_argument("--project-dir", default=".", metavar="DIR",
                   help="the monolith's folder (manage.py; its settings import from here; default .)")
    p.add_argument("--out", default=".", metavar="DIR",
                   help="where <service>/ and plans/<service>.yaml go (default .); --routes FILE gets the route "
                        "entry, else DIR/routes.yaml is written")
    p.add_argument("--service-url", default="http://127.0.0.1:8002", metavar="URL")
    p.add_argument("--monolith-url", default="http://127.0.0.1:8000", metavar="URL", help="for a new route file")
    p.set_defaults(func=cmd_scaffold)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["plan"]:
        argv = argv[1:]
    args = build_parser().parse_args(argv)
    if getattr(args, "interval", 1) <= 0 or getattr(args, "max_seconds", 1) < 0 or getattr(args, "wait", 0) < 0:
        print("error: --interval must be > 0, --max-seconds and --wait >= 0", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except PlanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
