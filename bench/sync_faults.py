#!/usr/bin/env python3
"""The issue's fault figure: 10,000 updates from several writers while consumer and relay are killed -9.

    flock /tmp/strangler-bench.lock .venv/bin/python bench/sync_faults.py                 # both setups
    flock /tmp/strangler-bench.lock .venv/bin/python bench/sync_faults.py --setup embedded --updates 2000

Setups: ``embedded`` (SQLite databases, the sqlite-queue:// broker: what a new user runs) and ``rabbitmq``
(PostgreSQL on 127.0.0.1:5432 + RabbitMQ on 127.0.0.1:5672, private databases and namespace; the shared
RabbitMQ server is never restarted). The scenario is tests/strangler_sync/faults.py, the one the fault
test runs at a smaller size: it fails unless every event is applied once and sync_verify finds 0
differences without repair. Writes bench/results/sync-faults.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.strangler_sync.faults import fault_run  # noqa: E402
from tests.strangler_sync.processes import PgDatabases  # noqa: E402

RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setup", choices=["embedded", "rabbitmq", "both"], default="both")
    parser.add_argument("--updates", type=int, default=10_000)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--kills", type=int, default=3, help="kill -9 of the consumer and of the relay, each")
    args = parser.parse_args()
    setups = ["embedded", "rabbitmq"] if args.setup == "both" else [args.setup]
    results = {"load_average_before": os.getloadavg()[0], "runs": []}
    for setup in setups:
        print(f"{setup}: {args.updates:,} updates by {args.writers} writers, {args.kills} kills each ...", flush=True)
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="sync-faults-") as tmp:
            if setup == "embedded":
                run = fault_run(Path(tmp), broker_url="sqlite-queue://", databases=None, writers=args.writers,
                                updates=args.updates, kills=args.kills)
            else:
                run = fault_run(Path(tmp), broker_url=RABBITMQ_URL, databases=PgDatabases(), writers=args.writers,
                                updates=args.updates, kills=args.kills)
        run.update(setup=setup, seconds=round(time.monotonic() - started, 1))
        print(f"  {json.dumps(run)}", flush=True)
        results["runs"].append(run)
    results["load_average_after"] = os.getloadavg()[0]
    written = REPO / "bench" / "results" / "sync-faults.json"
    written.parent.mkdir(parents=True, exist_ok=True)
    written.write_text(json.dumps(results, indent=2) + "\n")
    print("\n| setup | events | kills -9 (consumer + relay) | inbox (distinct) | applied twice | verify differences |")
    print("| --- | --- | --- | --- | --- | --- |")
    for run in results["runs"]:
        inbox = run["inbox"]
        print(f"| {run['setup']} | {run['events']:,} | {len(run['kills'])} | {inbox['inbox']:,} ({inbox['distinct']:,})"
              f" | {inbox['inbox'] - inbox['distinct']} | {sum(run['differences'].values())} |")
    print(f"\nwritten to {written.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
