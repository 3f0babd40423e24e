#!/usr/bin/env python3
"""Tracing's cost on the data plane: outbox writes, relay and consumer, side by side in one run.

Each round runs one worker process per mode, in turn (rounds interleave the modes, so a change in the machine's
load hits all of them alike), on the embedded default (SQLite + sqlite-queue: the data plane is CPU-bound in
Python there, the worst case for a per-event cost). A worker publishes N category events (event_publish: the
storefront's products are captured by triggers instead) as N traced requests would (one transaction and one caller
traceparent each), relays them to the broker, and applies them as a follower (ORIGIN catalog, the monolith's
category handler). The modes:

  main        the code this branch started from (git archive of the merge base), or --base REV (e.g. 67b0047^1,
              main before the tracing merge): no tracing code at all
  off         this branch, no OTEL_* set: tracing off, the default
  unsampled   tracing on (OTLP/HTTP exporter to a local receiver), the callers' traces not sampled (flags 00):
              every span is a non-recording one (what a 1 % sampler costs on the other 99 %)
  sampled     tracing on, every trace sampled: outbox, relay, apply and handler spans exported to the receiver

    flock /tmp/strangler-bench.lock .venv/bin/python bench/tracing_bench.py            # 3 rounds of 2,000 events
    flock /tmp/strangler-bench.lock .venv/bin/python bench/tracing_bench.py --events 5000 --rounds 5

Rates are events per CPU-second of the worker process (time.process_time: its span-export thread included,
the broker's polling waits and the other processes of a busy machine not); wall-clock rates are in the JSON.
Prints a table (median per phase and mode, and each mode against ``main``) and writes
bench/results/tracing.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.otlp_receiver import OtlpReceiver  # noqa: E402

RESULTS = REPO / "bench" / "results" / "tracing.json"
MODES = ("main", "off", "unsampled", "sampled")
PHASES = ("write", "relay", "consume")

# Runs in a fresh process under the mode's code and environment; prints one JSON line.
WORKER = """
import json, os, sys, time
import django
django.setup()
from django.db import transaction
from django.test.utils import override_settings
import strangler_sync
from servicekit.trace_context import trace_continued, trace_start
from strangler_sync.broker import broker_connection
from strangler_sync.conf import sync_settings
from strangler_sync.consumer import SyncConsumer
from strangler_sync.relay import relay_run
from strangler_sync.services import event_publish

n, flags = int(os.environ["BENCH_EVENTS"]), os.environ["BENCH_FLAGS"]
def payload(i):
    return {"id": i, "name": f"Traced {i}", "slug": f"t-{i}", "parent_id": None, "description": "",
            "created_at": "2026-01-01T00:00:00+00:00", "updated_at": "2026-01-01T00:00:00+00:00"}
def clocks():
    return time.perf_counter(), time.process_time()  # wall, and this process's CPU (its export thread included)
def since(start):
    wall, cpu = clocks()
    return wall - start[0], cpu - start[1]
def flush():  # sampled mode: what the batch processor still holds is part of the work
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry import trace
        trace.get_tracer_provider().force_flush()
started = clocks()
for i in range(1, n + 1):
    caller = trace_start().traceparent[:-2] + flags
    with trace_continued(caller):
        with transaction.atomic():
            event_publish(event_type="category.created", aggregate_type="category", aggregate_id=i, payload=payload(i))
flush()
write = since(started)
started = clocks()
published = 0
while True:
    batch = relay_run(once=True)
    if not batch:
        break
    published += batch
flush()
relay = since(started)
config = sync_settings()
follower = {**config.raw, "ORIGIN": "catalog", "QUEUE": "sync.catalog", "SUBSCRIPTIONS": ["category.*"]}
with override_settings(STRANGLER_SYNC=follower):
    with broker_connection() as connection:
        consumer = SyncConsumer(connection)
        started = clocks()
        consumer.drain(idle_seconds=0.3)
        flush()
        consume = since(started)
assert published == n and consumer.handled == n, (published, consumer.handled)
print(json.dumps({"write": n / write[1], "relay": n / relay[1], "consume": n / consume[1],
                  "wall": {"write": n / write[0], "relay": n / relay[0], "consume": n / (consume[0] - 0.3)},
                  "code": os.path.dirname(os.path.dirname(strangler_sync.__file__))}))
"""


def revision_tree(folder: Path, revision: str, *, name: str) -> tuple[Path, str]:
    """`revision` of this repository unpacked into folder/name, and its commit."""
    commit = subprocess.run(["git", "rev-parse", "--verify", f"{revision}^{{commit}}"], cwd=REPO,
                            capture_output=True, text=True).stdout.strip()
    if not commit:
        raise SystemExit(f"tracing_bench: {revision!r} is not a commit of this repository")
    archive = folder / f"{name}.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "archive", commit], cwd=REPO, stdout=out, check=True)
    target = folder / name  # the templates are named after the code folder: names differ from this checkout's
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    return target, commit


def mode_env(mode: str, *, var: Path, receiver: OtlpReceiver, events: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and not k.endswith("DATABASE_URL")
           and k not in ("CELERY_BROKER_URL", "STRANGLER_SYNC_NAMESPACE", "DJANGO_SETTINGS_MODULE")}
    env.update(DJANGO_SETTINGS_MODULE="monolith.settings", DATABASE_URL=f"sqlite:///{var / 'db.sqlite3'}",
               CELERY_BROKER_URL="sqlite-queue://", STRANGLER_VAR_DIR=str(var), STRANGLER_SYNC_RELAY_TRIGGER="none",
               DEBUG="0", LOG_LEVEL="WARNING", SECRET_KEY="bench-only-secret-key-" + "x" * 40,
               STRANGLER_IDENTITY_KEY="bench-only-identity-key-" + "k" * 32,  # projects refuse to start without
               BENCH_EVENTS=str(events), BENCH_FLAGS="00" if mode == "unsampled" else "01")
    if mode in ("unsampled", "sampled"):
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.url
    return env


def migrated_template(code: Path, folder: Path, receiver: OtlpReceiver) -> Path:
    var = folder / f"template-{code.name}"
    var.mkdir()
    env = mode_env("off", var=var, receiver=receiver, events=0)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=code, check=True,
                   env={**env, "PYTHONPATH": str(code)})
    return var / "db.sqlite3"


def run_worker(mode: str, *, code: Path, template: Path, folder: Path, receiver: OtlpReceiver, events: int) -> dict:
    var = Path(tempfile.mkdtemp(prefix=f"{mode}-", dir=folder))
    shutil.copy(template, var / "db.sqlite3")
    env = mode_env(mode, var=var, receiver=receiver, events=events)
    result = subprocess.run([sys.executable, "-c", WORKER], cwd=code, env={**env, "PYTHONPATH": str(code)},
                            capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise SystemExit(f"tracing_bench: the {mode} worker failed:\n{result.stderr[-3000:]}")
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    if Path(measured.pop("code")).resolve() != code.resolve():
        raise SystemExit(f"tracing_bench: the {mode} worker did not run the code under {code}")
    shutil.rmtree(var, ignore_errors=True)
    return measured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--base", default="", metavar="REV",
                        help="the code the 'main' mode runs (default: the merge base with main; on main itself, "
                             "e.g. 67b0047^1, main before the tracing merge)")
    parser.add_argument("--this", default="", metavar="REV",
                        help="the code the other modes run (default: this checkout); with --base 67b0047^1 "
                             "--this 67b0047 the two differ by the tracing merge alone")
    args = parser.parse_args()
    if args.events < 1 or args.rounds < 1:
        raise SystemExit("tracing_bench: --events and --rounds must be at least 1")
    receiver = OtlpReceiver()
    load_before = os.getloadavg()[0]
    samples: dict[str, list[dict]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="tracing-bench-") as tmp:
        folder = Path(tmp)
        base = args.base or subprocess.run(["git", "merge-base", "HEAD", "main"], cwd=REPO, capture_output=True,
                                           text=True, check=True).stdout.strip()
        main_code, main_commit = revision_tree(folder, base, name="base")
        this_code = revision_tree(folder, args.this, name="this")[0] if args.this else REPO
        codes = {"main": main_code, "off": this_code, "unsampled": this_code, "sampled": this_code}
        print(f"setting up: migrated SQLite templates (this branch and main {main_commit[:10]}) ...", flush=True)
        templates = {code: migrated_template(code, folder, receiver) for code in {main_code, this_code}}
        for round_ in range(1, args.rounds + 1):
            for mode in MODES:
                measured = run_worker(mode, code=codes[mode], template=templates[codes[mode]], folder=folder,
                                      receiver=receiver, events=args.events)
                samples[mode].append(measured)
                print(f"  round {round_} {mode:9} " + "  ".join(f"{p} {measured[p]:7,.0f} ev/s" for p in PHASES),
                      flush=True)
    time.sleep(0.5)  # the last worker's final export
    exported = len(receiver.spans())
    receiver.stop()
    medians = {mode: {p: statistics.median(s[p] for s in samples[mode]) for p in PHASES} for mode in MODES}
    # the relay + consumer path as one rate (events through both per second of both)
    for mode in MODES:
        m = medians[mode]
        m["relay+consume"] = 1 / (1 / m["relay"] + 1 / m["consume"])
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "main_commit": main_commit, "events": args.events, "rounds": args.rounds, "medians": medians,
        "samples": samples, "spans_exported": exported,
        "load_average_before": load_before, "load_average_after": os.getloadavg()[0],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    columns = (*PHASES, "relay+consume")
    print(f"\n{args.events:,} events per worker, median of {args.rounds} rounds, events per CPU-second (vs main)\n")
    print("| mode | " + " | ".join(columns) + " |\n| --- |" + " --- |" * len(columns))
    for mode in MODES:
        cells = []
        for column in columns:
            value, base = medians[mode][column], medians["main"][column]
            cells.append(f"{value:,.0f}" + ("" if mode == "main" else f" ({(value / base - 1) * 100:+.1f} %)"))
        print(f"| {mode} | " + " | ".join(cells) + " |")
    print(f"\nspans exported (sampled mode): {exported:,}; load average (1 min) {load_before:.1f} before, "
          f"{results['load_average_after']:.1f} after; written to {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
