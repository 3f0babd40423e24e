#!/usr/bin/env python3
"""Data-plane benchmark on PostgreSQL + RabbitMQ: monolith outbox -> relay -> broker -> catalog service inbox.

Measures, in one run, side by side:
  * raw broker publish rate (kombu, publisher confirms), the ceiling for the relay
  * throughput: a backlog of outbox rows until all are applied in the follower's database
  * lag at a steady offered rate (default 1,000 events/s): commit (occurred_at) -> applied, p50/p99
  * both again with the events written by the product's capture triggers (``--writes``, default both):
    product rows inserted / updated in SQL, no outbox write of the bench's own
  * backfill rows/s (snapshots into the outbox, and straight to the broker)
  * verify time for N rows on each side (HTTP checksums, bucket drill-down), clean and with 3 differences

    .venv/bin/python bench/sync_bench.py          # small, < 2 minutes
    .venv/bin/python bench/sync_bench.py --full   # the issue's sizes (50,000-event backlog, 1M-row verify, ...)

Prints a table and writes bench/results/sync.json (--full: sync-full.json). Needs PostgreSQL on
127.0.0.1:5432 (user postgres) and RabbitMQ on 127.0.0.1:5672 (guest/guest); it creates and drops its own
databases and queues.

The broker side by side (the databases stay PostgreSQL; results in sync-<broker>-raw-pipeline.json)::

    flock /tmp/strangler-bench.lock .venv/bin/python bench/sync_bench.py --only raw,pipeline --broker sqlite-queue
    flock /tmp/strangler-bench.lock .venv/bin/python bench/sync_bench.py --only raw,pipeline --broker filesystem
    flock /tmp/strangler-bench.lock .venv/bin/python bench/sync_bench.py --only raw,pipeline --broker rabbitmq

On the embedded brokers (sqlite-queue://, kombu's filesystem://) a publish is stored when it returns
(there are no confirms): the raw row publishes message by message.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402
from kombu import Connection, Exchange, Producer, Queue  # noqa: E402

from strangler_sync import sqlite_transport  # noqa: E402
from strangler_sync.broker import AtomicFilesystemTransport, BatchConfirms  # noqa: E402
from strangler_sync.verify import verify_aggregate  # noqa: E402
from tests.strangler_sync.processes import (  # noqa: E402
    PgDatabases,
    broker_cleanup,
    stop,
    two_projects,
    wait_for,
)

RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
BROKERS = {"rabbitmq": RABBITMQ_URL, "sqlite-queue": f"{sqlite_transport.SCHEME}://", "filesystem": "filesystem://"}
RESULTS = REPO / "bench" / "results" / "sync.json"
# Relays, consumers and writers run as in production: DEBUG off (DEBUG keeps every SQL statement in memory).
# The identity key: every project refuses to start without one (servicekit_identity.E001).
PRODUCTION = {"DEBUG": "0", "SECRET_KEY": "bench-only-secret-key-" + "x" * 40,
              "STRANGLER_IDENTITY_KEY": "bench-only-identity-key-" + "k" * 32}

PRODUCT_COLUMNS = "id, sku, slug, name, description, price, currency, is_active, images, category_id, created_at, " \
                  "updated_at"

# Runs inside the monolith (manage.py shell): a backlog of distinct product events, as event_publish writes them.
PRELOAD = """
import json, time
from django.db import transaction
from django.utils import timezone
from strangler_sync.models import AggregateVersion, OutboxEvent
now = timezone.now()
def payload(i):
    return {{"id": i, "sku": f"B-{{i}}", "slug": f"b-{{i}}", "name": f"Bench {{i}}", "description": "",
             "price": "9.99", "currency": "USD", "is_active": True, "category_id": None, "images": [],
             "created_at": now.isoformat(), "updated_at": now.isoformat()}}
with transaction.atomic():
    OutboxEvent.objects.bulk_create([
        OutboxEvent(event_type="product.created", aggregate_type="product", aggregate_id=str(i), version=1,
                    payload=payload(i), occurred_at=now, origin="monolith", next_attempt_at=now)
        for i in range({first}, {first} + {count})], batch_size=2000)
    AggregateVersion.objects.bulk_create([  # the versions issued, so later writes continue at 2
        AggregateVersion(aggregate_type="product", aggregate_id=str(i), version=1)
        for i in range({first}, {first} + {count})], batch_size=2000)
print(json.dumps({{"preloaded": {count}, "committed_at": time.time()}}))
"""

# Runs inside the monolith: commits product.updated events at a steady rate. Every 10 ms one transaction
# commits the tick's events, each as event_publish writes it (version issued by the per-aggregate upsert,
# full-state payload validated, one outbox row), but with one multi-row statement for the versions and one
# for the rows: the shape of a bulk business write, since event_publish's two statements per event cap
# one Python process at a few hundred events/s on this box. Writers take disjoint ids (i % writers).
STEADY_WRITER = """
import json, random, time
from django.db import connection, transaction
from django.utils import timezone
from strangler_sync.models import OutboxEvent
from strangler_sync.schemas import payload_validate
rate, duration, per_tick = {rate}, {duration}, max(1, {rate} // 100)
tick = per_tick / rate
rng = random.Random({seed})
ids = [i for i in range({first}, {last} + 1) if i % {writers} == {seed}]
started = time.perf_counter()
sent = 0
next_at = started
while time.perf_counter() - started < duration:
    chosen = sorted(rng.sample(ids, per_tick))  # ascending: versions are locked in a fixed order
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO strangler_sync_aggregateversion (aggregate_type, aggregate_id, version) VALUES "
                + ", ".join(["('product', %s, 1)"] * len(chosen))
                + " ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET "
                "version = strangler_sync_aggregateversion.version + 1 RETURNING aggregate_id, version",
                [str(i) for i in chosen])
            versions = dict(cursor.fetchall())
        now = timezone.now()
        rows = []
        for i in chosen:
            payload = {{"id": i, "sku": f"B-{{i}}", "slug": f"b-{{i}}", "name": f"Bench {{i}} {{sent}}",
                        "description": "", "price": "9.99", "currency": "USD", "is_active": True,
                        "category_id": None, "images": [], "created_at": now.isoformat(),
                        "updated_at": now.isoformat()}}
            payload_validate(event_type="product.updated", schema_version=1, payload=payload)
            rows.append(OutboxEvent(event_type="product.updated", aggregate_type="product", aggregate_id=str(i),
                                    version=versions[str(i)], payload=payload, occurred_at=now, origin="monolith",
                                    next_attempt_at=now))
            sent += 1
        OutboxEvent.objects.bulk_create(rows)
    next_at += tick
    delay = next_at - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
print(json.dumps({{"sent": sent, "seconds": time.perf_counter() - started}}))
"""

# Runs inside the monolith: the same backlog written by automatic capture (the monolith's product aggregate has
# capture="automatic"): one INSERT of the product rows in one transaction, whose triggers issue the versions
# and write the outbox rows. Ids from {first} on, apart from the explicit backlog's.
PRELOAD_CAPTURED = """
import json, time
from django.db import connection, transaction
with transaction.atomic(), connection.cursor() as cursor:
    cursor.execute(
        "INSERT INTO catalog_product ({columns}) SELECT g, 'B-' || g, 'b-' || g, 'Bench ' || g, '', 9.99, 'USD', "
        "true, '[]'::jsonb, NULL, now(), now() FROM generate_series(%s, %s) AS g", [{first}, {first} + {count} - 1])
print(json.dumps({{"preloaded": {count}, "committed_at": time.time()}}))
"""

# Runs inside the monolith: STEADY_WRITER's load as plain product UPDATEs (one statement per 10 ms tick, every
# chosen row a new name); the capture triggers write each row's product.updated event.
STEADY_WRITER_CAPTURED = """
import json, random, time
from django.db import connection, transaction
rate, duration, per_tick = {rate}, {duration}, max(1, {rate} // 100)
tick = per_tick / rate
rng = random.Random({seed})
ids = [i for i in range({first}, {last} + 1) if i % {writers} == {seed}]
started = time.perf_counter()
sent = 0
next_at = started
while time.perf_counter() - started < duration:
    chosen = sorted(rng.sample(ids, per_tick))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE catalog_product SET name = 'Bench ' || id || ' ' || %s, updated_at = now() "
                       "WHERE id = ANY(%s)", [str(sent), chosen])
    sent += len(chosen)
    next_at += tick
    delay = next_at - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
print(json.dumps({{"sent": sent, "seconds": time.perf_counter() - started}}))
"""
CAPTURED_FIRST = 10_000_001  # the captured variant's product ids

# Runs inside the monolith: the same rows three ways, each starting without outbox rows or product versions:
# into the outbox (one INSERT .. SELECT per batch on PostgreSQL), the same through the Python path (what
# every other database and SNAPSHOT-function aggregates use), and straight to the broker.
BACKFILL = """
import json
from strangler_sync.backfill import backfill_run
from strangler_sync.models import AggregateVersion, OutboxEvent
def fresh():
    OutboxEvent.objects.filter(event_type="product.snapshot").delete()
    AggregateVersion.objects.filter(aggregate_type="product").delete()
fresh()
r1 = backfill_run(aggregate_type="product", batch_size={batch})
fresh()
r0 = backfill_run(aggregate_type="product", batch_size={batch}, engine="python")
fresh()
r2 = backfill_run(aggregate_type="product", batch_size={batch}, direct=True)
print(json.dumps({{"outbox_rows": r1.emitted, "outbox_seconds": r1.seconds,
                  "python_rows": r0.emitted, "python_seconds": r0.seconds,
                  "direct_rows": r2.emitted, "direct_seconds": r2.seconds}}))
"""


def pg(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn.replace("postgres://", "postgresql://"), autocommit=True)


def count(dsn: str, sql: str) -> int:
    with pg(dsn) as conn:
        return conn.execute(sql).fetchone()[0]


def raw_publish_rate(n: int, *, batch: int | None, buffered: bool = False) -> float:
    """Messages/s one kombu producer publishes with confirms: per message (batch None) or per batch, the
    batch's frames written one by one or in one write (buffered: what the relay does)."""
    exchange = Exchange("bench.raw", type="topic", durable=True)
    queue = Queue("bench.raw.q", exchange=exchange, routing_key="product.*", durable=True)
    body = {"message_id": "x", "event_type": "product.updated", "payload": {"id": 1, "name": "x" * 200}}
    options = {} if batch else {"confirm_publish": True}
    with Connection(RABBITMQ_URL, transport_options=options) as connection:
        channel = connection.channel()
        queue(channel).declare()
        confirms = BatchConfirms(channel) if batch else None
        exchange(channel).declare()
        producer = Producer(channel, exchange=exchange, serializer="json", auto_declare=False)
        started = time.perf_counter()
        step = batch or 1
        for first in range(0, n, step):
            with confirms.frames_buffered() if buffered else contextlib.nullcontext():
                for _ in range(min(step, n - first)):
                    producer.publish(body, routing_key="product.updated", delivery_mode=2)
                    if confirms is not None:
                        confirms.published += 1
            if confirms is not None:
                confirms.wait(timeout=30)
        seconds = time.perf_counter() - started
        queue(channel).delete()
        exchange(channel).delete()
    return n / seconds


def embedded_publish_rate(n: int, *, broker: str, folder: Path) -> float:
    """Messages/s one kombu producer publishes to an embedded broker (stored when publish returns)."""
    if broker == "sqlite-queue":
        connection = Connection("sqlite-queue://", transport=sqlite_transport.Transport,
                                transport_options={"database": str(folder / "raw.sqlite3")})
    else:
        for name in ("queue", "control"):
            (folder / name).mkdir(parents=True, exist_ok=True)
        connection = Connection("filesystem://", transport=AtomicFilesystemTransport, transport_options={
            "data_folder_in": str(folder / "queue"), "data_folder_out": str(folder / "queue"),
            "control_folder": str(folder / "control"), "store_processed": False})
    exchange = Exchange("bench.raw", type="topic", durable=True)
    queue = Queue("bench.raw.q", exchange=exchange, routing_key="product.*", durable=True)
    body = {"message_id": "x", "event_type": "product.updated", "payload": {"id": 1, "name": "x" * 200}}
    with connection:
        channel = connection.channel()
        exchange(channel).declare()
        queue(channel).declare()
        producer = Producer(channel, exchange=exchange, serializer="json", auto_declare=False)
        started = time.perf_counter()
        for _ in range(n):
            producer.publish(body, routing_key="product.updated", delivery_mode=2)
        return n / (time.perf_counter() - started)


def seed_products(dsn: str, table: str, n: int) -> float:
    """n product rows in one INSERT; not captured (bench data, not a measured write: no trigger runs)."""
    started = time.perf_counter()
    with pg(dsn) as conn, conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(
            f"INSERT INTO {table} ({PRODUCT_COLUMNS}) SELECT g, 'V-' || g, 'v-' || g, 'Verify ' || g, '', "
            "(g %% 1000) + 0.99, 'USD', true, '[]'::jsonb, NULL, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z' "
            "FROM generate_series(1, %s) AS g",
            [n],
        )
    return time.perf_counter() - started


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def processes_alive(processes) -> None:
    """Fail at once when a relay or consumer died (a wait for its work would otherwise run to its timeout)."""
    for process in processes:
        if process.poll() is not None:
            tail = Path(process.log_path).read_text()[-600:]
            raise SystemExit(f"error: {Path(process.log_path).stem} exited {process.returncode}:\n{tail}")


def pipeline_run(monolith, catalog, *, size: dict, args, captured: bool) -> dict:
    """Throughput of a backlog and lag at a steady rate; the events written as event_publish does, or by the
    product's capture triggers (``captured``). Relays and consumers with their defaults: what users get."""
    mono_db, catalog_db = monolith.env["DATABASE_URL"], catalog.env["CATALOG_DATABASE_URL"]
    inbox_sql = "SELECT count(*) FROM strangler_sync_inboxmessage"
    pending_sql = "SELECT count(*) FROM strangler_sync_outboxevent WHERE status = 'pending'"
    first = CAPTURED_FIRST if captured else 1
    last = first + size["backlog"] - 1
    how = "captured product writes" if captured else "outbox rows"
    results: dict = {}
    print(f"throughput: {size['backlog']} {how} -> applied ...", flush=True)
    batching = ["--prefetch", str(2 * args.batch), "--batch", str(args.batch)] if args.batch else []
    catalog_procs = [catalog.start("sync_consume", *batching, env=PRODUCTION) for _ in range(args.consumers)]
    relays = [monolith.start("sync_relay", env=PRODUCTION) for _ in range(args.relays)]
    applied_before = count(catalog_db, inbox_sql)
    time.sleep(4)  # relays and consumers up and polling (Django import) before the backlog commits
    # the whole backlog commits in one transaction: the clock starts at that commit
    preload = (PRELOAD_CAPTURED.format(first=first, count=size["backlog"], columns=PRODUCT_COLUMNS) if captured
               else PRELOAD.format(first=first, count=size["backlog"]))
    started = json.loads(monolith.shell(preload).strip().splitlines()[-1])["committed_at"]
    relayed_at = None
    while count(catalog_db, inbox_sql) < applied_before + size["backlog"]:
        processes_alive(relays + catalog_procs)
        if relayed_at is None and count(mono_db, pending_sql) == 0:
            relayed_at = time.time()
        if time.time() - started > 900:
            raise AssertionError("backlog not applied in 900 s")
        time.sleep(0.02)
    seconds = time.time() - started
    relayed_at = relayed_at or time.time()
    results["throughput_events_per_s"] = size["backlog"] / seconds
    results["throughput_seconds"] = seconds
    results["relay_published_per_s"] = size["backlog"] / (relayed_at - started)
    print(f"  relay {results['relay_published_per_s']:,.0f} ev/s;"
          f" throughput {size['backlog'] / seconds:,.0f} ev/s", flush=True)

    print(f"lag: {size['rate']} events/s offered for {size['duration']} s ({how}) ...", flush=True)
    phase_start = time.time()
    applied_before = count(catalog_db, inbox_sql)
    # several writer processes: one Python process commits only a few hundred events/s on 2 cores
    per_writer = size["rate"] // args.writers
    script = STEADY_WRITER_CAPTURED if captured else STEADY_WRITER
    writer_procs = [monolith.start("shell", "-c", script.format(
        rate=per_writer, duration=size["duration"], first=first, last=last, seed=n, writers=args.writers),
        label="writer", env=PRODUCTION) for n in range(args.writers)]
    for process in writer_procs:
        process.wait(timeout=size["duration"] + 120)
    reports = [json.loads(Path(p.log_path).read_text().strip().splitlines()[-1]) for p in writer_procs]
    writer = {"sent": sum(r["sent"] for r in reports), "seconds": max(r["seconds"] for r in reports)}
    wait_for(lambda: processes_alive(relays + catalog_procs)
             or count(catalog_db, inbox_sql) >= applied_before + writer["sent"], timeout=600,
             interval=0.1, what="steady events applied")
    with pg(catalog_db) as conn:
        lags = [r[0] for r in conn.execute(
            "SELECT EXTRACT(EPOCH FROM received_at - occurred_at) FROM strangler_sync_inboxmessage "
            "WHERE occurred_at >= to_timestamp(%s) AND outcome = 'applied'", [phase_start]).fetchall()]
    lags = [float(x) * 1000 for x in lags]
    results["lag"] = {"offered_per_s": size["rate"], "achieved_per_s": writer["sent"] / writer["seconds"],
                      "events": len(lags), "p50_ms": percentile(lags, 50), "p99_ms": percentile(lags, 99),
                      "max_ms": max(lags) if lags else None}
    print(f"  lag {results['lag']}", flush=True)
    for process in relays + catalog_procs:
        stop(process)
    if captured:  # the later phases start from the explicit backlog's state: remove these rows, uncaptured
        with pg(mono_db) as conn, conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")
            conn.execute("DELETE FROM catalog_product WHERE id >= %s", [first])
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="the issue's targets (several minutes)")
    parser.add_argument("--relays", type=int, default=2)
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument("--writers", type=int, default=2, help="processes offering the steady load")
    parser.add_argument("--batch", type=int, default=None, help="messages a consumer applies per transaction "
                        "(default: sync_consume's default, with a prefetch of twice the batch)")
    parser.add_argument("--broker", choices=sorted(BROKERS), default="rabbitmq",
                        help="the broker of the raw and pipeline phases (default rabbitmq)")
    parser.add_argument("--writes", default="outbox,captured",
                        help="how the pipeline phase's events are written, side by side: outbox (rows written as "
                             "event_publish does) and/or captured (product rows written in SQL, the capture "
                             "triggers write the events); default both")
    parser.add_argument("--verify-only", action="store_true", help="only the verify row (1,000,000 rows with --full)")
    parser.add_argument("--only", default="", help="comma-separated phases to run: raw, pipeline (throughput and "
                        "lag), backfill, verify (default: all); results go to a separate <name>-<phases>.json")
    args = parser.parse_args()
    phases = {"raw", "pipeline", "backfill", "verify"}
    only = set(filter(None, args.only.split(","))) or set(phases)
    if args.verify_only:
        only = {"verify"}
    if only - phases:
        parser.error(f"unknown phase(s) {', '.join(sorted(only - phases))}; choose from {', '.join(sorted(phases))}")
    if args.broker != "rabbitmq" and only - {"raw", "pipeline"}:
        parser.error("--broker other than rabbitmq: only the raw and pipeline phases (--only raw,pipeline)")
    writes = [w for w in args.writes.split(",") if w]
    if not writes or set(writes) - {"outbox", "captured"} or (only == phases and "outbox" not in writes):
        parser.error("--writes: outbox and/or captured, comma-separated (a run of every phase includes outbox)")
    broker_url = BROKERS[args.broker]
    size = {
        "raw": 20_000 if args.full else 3_000,
        "backlog": 50_000 if args.full else 5_000,
        "rate": 1_000,  # the lag target is at 1,000 events/s offered
        "duration": 20 if args.full else 5,
        "backfill": 200_000 if args.full else 20_000,
        "verify": 1_000_000 if args.full else 50_000,
    }
    databases = PgDatabases()
    results: dict = {"mode": "full" if args.full else "default", "sizes": size, "relays": args.relays,
                     "consumers": args.consumers, "broker": args.broker,
                     "machine": f"{platform.machine()} {os.cpu_count()} cpu",
                     "load_average_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="sync-bench-") as tmp:
        tmp_path = Path(tmp)
        print(f"setting up: two PostgreSQL databases, migrations, {args.broker} broker ...", flush=True)
        monolith, catalog = two_projects(tmp_path, broker_url=broker_url, databases=databases)
        mono_db, catalog_db = monolith.env["DATABASE_URL"], catalog.env["CATALOG_DATABASE_URL"]
        try:
            if "raw" in only:
                print("raw broker publish ...", flush=True)
                if args.broker != "rabbitmq":
                    results["raw_publish_per_s"] = embedded_publish_rate(size["raw"], broker=args.broker,
                                                                         folder=tmp_path / "raw")
                else:
                    results["raw_publish_per_s"] = raw_publish_rate(size["raw"], batch=None)
                    results["raw_publish_batched_per_s"] = raw_publish_rate(size["raw"], batch=500)
                    results["raw_publish_buffered_per_s"] = raw_publish_rate(size["raw"], batch=500, buffered=True)

            if "pipeline" in only:
                for write in writes:
                    measured = pipeline_run(monolith, catalog, size=size, args=args, captured=write == "captured")
                    if write == "captured":
                        results["captured"] = measured
                    else:
                        results.update(measured)

            if "backfill" in only:
                print(f"backfill: {size['backfill']} rows ...", flush=True)
                with pg(mono_db) as conn:
                    conn.execute("DELETE FROM strangler_sync_outboxevent")
                seed_products(mono_db, "catalog_product", size["backfill"])
                backfill = json.loads(monolith.shell(BACKFILL.format(batch=2000)).strip().splitlines()[-1])
                results["backfill_outbox_rows_per_s"] = backfill["outbox_rows"] / backfill["outbox_seconds"]
                results["backfill_outbox_python_rows_per_s"] = backfill["python_rows"] / backfill["python_seconds"]
                results["backfill_direct_rows_per_s"] = backfill["direct_rows"] / backfill["direct_seconds"]

            if "verify" in only:
                print(f"verify: {size['verify']} rows per side ...", flush=True)
                with pg(mono_db) as conn:
                    conn.execute("DELETE FROM catalog_product")
                with pg(catalog_db) as conn:
                    conn.execute("DELETE FROM catalog_service_product")
                seed_products(mono_db, "catalog_product", size["verify"])
                seed_products(catalog_db, "catalog_service_product", size["verify"])
                monolith.serve()
                catalog.serve()
                clean = verify_aggregate(source=monolith.url, follower=catalog.url, aggregate="product", buckets=256)
                with pg(catalog_db) as conn:
                    conn.execute("UPDATE catalog_service_product SET price = price + 1 WHERE id = %s",
                                 [size["verify"] // 3])
                    conn.execute("DELETE FROM catalog_service_product WHERE id = %s", [size["verify"] // 2])
                    conn.execute(f"INSERT INTO catalog_service_product ({PRODUCT_COLUMNS}) SELECT id + %s, sku || 'x', "
                                 "slug || 'x', name, description, price, currency, is_active, images, category_id, "
                                 "created_at, updated_at FROM catalog_service_product WHERE id = 1", [size["verify"]])
                dirty = verify_aggregate(source=monolith.url, follower=catalog.url, aggregate="product", buckets=256)
                # the same 3 differences with both projects hashing in Python (what SQLite sides do): side by side
                for project in (monolith, catalog):
                    project.env["STRANGLER_SYNC_CHECKSUM_ENGINE"] = "python"
                    project.serve()
                    del project.env["STRANGLER_SYNC_CHECKSUM_ENGINE"]
                python = verify_aggregate(source=monolith.url, follower=catalog.url, aggregate="product", buckets=256)
                results["verify"] = {
                    "rows": size["verify"], "clean_seconds": clean.seconds, "clean_differences": clean.differences,
                    "dirty_seconds": dirty.seconds, "dirty_differences": dirty.differences,
                    "dirty_requests": dirty.requests,
                    "python_dirty_seconds": python.seconds, "python_dirty_differences": python.differences,
                }
        finally:
            monolith.stop_all()
            catalog.stop_all()
            databases.drop_all()
            if args.broker == "rabbitmq":
                broker_cleanup(RABBITMQ_URL, monolith.env["STRANGLER_SYNC_NAMESPACE"])

    results["load_average_after"] = os.getloadavg()[0]
    name = "sync-full" if args.full else "sync"
    if args.broker != "rabbitmq":
        name += f"-{args.broker}"
    suffix = "" if only == phases else "-" + "-".join(sorted(only))
    written = RESULTS.with_name(f"{name}{suffix}.json")
    written.parent.mkdir(parents=True, exist_ok=True)
    written.write_text(json.dumps(results, indent=2) + "\n")
    if only == {"verify"}:
        verify = results["verify"]
        print(f"\nverify {size['verify']:,} rows: {verify['clean_seconds']:.1f} s clean, "
              f"{verify['dirty_seconds']:.1f} s finding {verify['dirty_differences']} differences (Python path: "
              f"{verify['python_dirty_seconds']:.1f} s finding {verify['python_dirty_differences']}); load average "
              f"{results['load_average_before']:.1f} before, {results['load_average_after']:.1f} after; "
              f"written to {written.relative_to(REPO)}")
        return 0
    if only != phases:  # a partial run: the measured values as they are
        print(json.dumps({k: v for k, v in results.items() if k not in ("sizes",)}, indent=2))
        print(f"written to {written.relative_to(REPO)}")
        return 0
    lag = results["lag"]
    rows = [
        ("raw broker publish, confirm each", f"{results['raw_publish_per_s']:,.0f} msg/s", "kombu confirm_publish"),
        ("raw broker publish, confirm per batch", f"{results['raw_publish_batched_per_s']:,.0f} msg/s",
         "500 per batch, one socket write per message"),
        ("raw broker publish, confirm per batch, buffered", f"{results['raw_publish_buffered_per_s']:,.0f} msg/s",
         "500 per batch in one socket write: what the relay does"),
        ("relay: outbox -> broker confirmed", f"{results['relay_published_per_s']:,.0f} ev/s",
         "same run as the next row: backlog published and marked"),
        ("outbox -> applied throughput", f"{results['throughput_events_per_s']:,.0f} ev/s",
         f"{size['backlog']:,} events, {args.relays} relays, {args.consumers} consumers"),
        (f"lag at {lag['offered_per_s']:,} ev/s offered", f"p50 {lag['p50_ms']:.0f} ms, p99 {lag['p99_ms']:.0f} ms",
         f"achieved {lag['achieved_per_s']:,.0f} ev/s by {args.writers} writers"),
    ]
    if "captured" in results:
        captured, captured_lag = results["captured"], results["captured"]["lag"]
        rows += [
            ("captured: relay, outbox -> broker", f"{captured['relay_published_per_s']:,.0f} ev/s",
             "events written by the product's capture triggers"),
            ("captured: outbox -> applied throughput", f"{captured['throughput_events_per_s']:,.0f} ev/s",
             f"one INSERT of {size['backlog']:,} product rows"),
            (f"captured: lag at {captured_lag['offered_per_s']:,} ev/s offered",
             f"p50 {captured_lag['p50_ms']:.0f} ms, p99 {captured_lag['p99_ms']:.0f} ms",
             f"achieved {captured_lag['achieved_per_s']:,.0f} ev/s, product UPDATEs"),
        ]
    rows += [
        ("backfill into outbox", f"{results['backfill_outbox_rows_per_s']:,.0f} rows/s",
         f"{size['backfill']:,} rows, one INSERT .. SELECT per batch"),
        ("backfill into outbox, Python path", f"{results['backfill_outbox_python_rows_per_s']:,.0f} rows/s",
         f"{size['backfill']:,} rows, COPY (other databases, SNAPSHOT functions)"),
        ("backfill straight to broker", f"{results['backfill_direct_rows_per_s']:,.0f} rows/s",
         f"{size['backfill']:,} rows"),
        (f"verify {size['verify']:,} rows", f"{results['verify']['clean_seconds']:.1f} s clean",
         f"{results['verify']['dirty_seconds']:.1f} s finding {results['verify']['dirty_differences']} differences"),
        (f"verify {size['verify']:,} rows, Python path", f"{results['verify']['python_dirty_seconds']:.1f} s",
         f"finding {results['verify']['python_dirty_differences']} differences (both sides hashing in Python)"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\n| {'measure'.ljust(width)} | result | notes |\n| {'-' * width} | --- | --- |")
    for name, value, note in rows:
        print(f"| {name.ljust(width)} | {value} | {note} |")
    print(f"\nload average (1 min) {results['load_average_before']:.1f} before, "
          f"{results['load_average_after']:.1f} after; written to {written.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
