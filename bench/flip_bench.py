#!/usr/bin/env python3
"""The issue's flip figure: N fenced ownership flips under ~50 writes/s through the demo's proxy (mitmproxy plane).

    flock /tmp/strangler-bench.lock .venv/bin/python bench/flip_bench.py                       # both setups
    flock /tmp/strangler-bench.lock .venv/bin/python bench/flip_bench.py --setup embedded --flips 4

Setups: ``embedded`` (what `dev.py demo` runs: SQLite databases, the embedded broker) and ``postgres-rabbitmq``
(throwaway PostgreSQL databases on 127.0.0.1:5432, RabbitMQ on 127.0.0.1:5672 with a namespace of its own).
The scenario is tests/migrations_plan/flip_load.py, the one the flip test runs with 2 flips: product and
category flip monolith -> catalog and back, each flip as the catalog plan's step does it (hold route edit,
ownership_flip, lift route edit). Per setup: the write hold's seconds (p50/p99, from the proxy serving the hold
to it serving the lift), writes ok / retried after a 503 write_hold / answered 409 / other / lost, the writes
the proxy sent again after a flip's 409, sync_verify's differences after, and what the demo's continuous
reconciliation repaired meanwhile (it must be 0: a repair would hide a loss). Writes
bench/results/flip-<vendor>.json (sqlite, postgresql).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# real_services_env reads the PostgreSQL server from Django's settings; the demo's projects get their own databases
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monolith.settings")
os.environ.setdefault("STRANGLER_SYNC_VERIFY_TOKEN", secrets.token_urlsafe(24))  # the demo and the flip share it

VENDORS = {"embedded": "sqlite", "postgres-rabbitmq": "postgresql"}


def _setup_env(setup: str):
    if setup == "embedded":
        return contextlib.nullcontext({})
    os.environ["DATABASE_URL"] = os.environ.get("FLIP_BENCH_PG", "postgres://postgres@127.0.0.1:5432/postgres")
    import django

    django.setup()
    from tests.test_read_your_writes_demo import real_services_env

    return real_services_env()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setup", choices=[*VENDORS, "both"], default="both")
    parser.add_argument("--flips", type=int, default=10, help="flips per setup (even: ends where it started)")
    parser.add_argument("--rate", type=float, default=50.0, help="writes/s the writers aim at")
    parser.add_argument("--dwell", type=float, default=3.0, help="seconds of writes before, between, after flips")
    args = parser.parse_args()
    if args.flips < 1:
        parser.error("--flips must be at least 1")
    from tests.migrations_plan.flip_load import flip_run
    from tests.test_demo import Demo

    setups = list(VENDORS) if args.setup == "both" else [args.setup]
    rows = []
    for setup in setups:
        print(f"{setup}: {args.flips} flips under {args.rate:g} writes/s ...", flush=True)
        load_before = os.getloadavg()[0]
        with tempfile.TemporaryDirectory(prefix="flip-bench-") as tmp, _setup_env(setup) as env:
            demo = Demo(Path(tmp) / "var", env=env)
            try:
                demo.wait_ready(timeout=400)
                run = flip_run(demo, flips=args.flips, rate=args.rate, dwell=args.dwell)
            finally:
                if demo.process.poll() is None:
                    demo.kill_everything()
        run.update(setup=setup, load_average_before=load_before, load_average_after=os.getloadavg()[0])
        written = REPO / "bench" / "results" / f"flip-{VENDORS[setup]}.json"
        written.parent.mkdir(parents=True, exist_ok=True)
        written.write_text(json.dumps(run, indent=2) + "\n")
        print(f"  written to {written.relative_to(REPO)}", flush=True)
        rows.append(run)
    print("\n| setup | flips | writes/s (ok) | hold p50 s | hold p99 s | ok | retried (503 write_hold) | 409 | other"
          " | sent again by proxy | lost | verify differences | repaired by reconcile |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for run in rows:
        print(f"| {run['setup']} | {run['flips']} | {run['writes_per_second']} | {run['hold_p50']} | "
              f"{run['hold_p99']} | {run['ok']:,} | {run['retried']} | {run['conflict']} | {run['other']} | "
              f"{run['resent_by_proxy']} | {run['lost']} | {run['differences']} | "
              f"{run['reconcile']['repaired_total']} |")
    failed = [r["setup"] for r in rows
              if r["conflict"] or r["other"] or r["lost"] or r["differences"] or r["reconcile"]["repaired_total"]]
    if failed:
        print(f"\nFAILED on {', '.join(failed)}: see the JSON", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
