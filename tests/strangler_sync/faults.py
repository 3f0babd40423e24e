"""The fault scenario shared by the fault test and bench/sync_faults.py: writers, kill -9, then verify.

Several writer processes update products through the monolith's own services (row and event in one
transaction) while the catalog's consumer and the monolith's relay are killed -9 several times, each
kill triggered by progress (the inbox or the published count grew since that process started), never by
a clock. Afterwards: every event is in the inbox exactly once, every product on its newest version,
and ``sync_verify`` (without ``--repair``) finds 0 differences.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path

import psycopg

from tests.strangler_sync.processes import (
    INBOX_STATS,
    OUTBOX_STATS,
    PgDatabases,
    broker_cleanup,
    kill9,
    two_projects,
    wait_for,
)
from tests.strangler_sync.processes import WRITER as WRITER_SCRIPT

VERSIONS = """
import json
from strangler_sync.models import {model}
print(json.dumps(dict({model}.objects.filter(aggregate_type="product").values_list("aggregate_id", "version"))))
"""


INBOX_COUNT = "SELECT count(*) FROM strangler_sync_inboxmessage"
PUBLISHED_COUNT = "SELECT count(*) FROM strangler_sync_outboxevent WHERE status = 'published'"


def count(database_url: str, sql: str) -> int:
    """A count read straight from a project's database (a manage.py shell takes seconds to start)."""
    if database_url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=30)) as db:
            return db.execute(sql).fetchone()[0]
    with psycopg.connect(database_url.replace("postgres://", "postgresql://", 1)) as db:
        return db.execute(sql).fetchone()[0]


def fault_run(tmp_path: Path, *, broker_url: str, databases: PgDatabases | None, writers: int = 3,
              updates: int = 1500, products: int = 40, kills: int = 3) -> dict:
    """Run the scenario; returns what it observed (raises AssertionError on any loss or difference)."""
    monolith, catalog = two_projects(tmp_path, broker_url=broker_url, databases=databases)
    categories = 2
    expected = writers * (categories + products) + updates
    started = time.monotonic()
    try:
        writer_procs = [
            monolith.start("shell", "-c", WRITER_SCRIPT.format(
                seed=n + 1, categories=categories, products=products,
                updates=updates // writers + (1 if n < updates % writers else 0)), label="writer")
            for n in range(writers)
        ]
        consumer = catalog.start("sync_consume")
        relay = monolith.start("sync_relay")
        # small steps, so the kills land while the writers still write (each restart costs a Django start-up)
        step = max(1, expected // (10 * kills))
        writing = lambda: any(p.poll() is None for p in writer_procs)  # noqa: E731
        kill_log = []  # (process, inbox or published count at the kill, writers still running)
        inbox_db, outbox_db = catalog.env["CATALOG_DATABASE_URL"], monolith.env["DATABASE_URL"]
        for _ in range(kills):
            # the consumer, once it applied `step` more events since it started: it holds a prefetch of unacked ones
            floor = count(inbox_db, INBOX_COUNT)
            wait_for(lambda floor=floor: count(inbox_db, INBOX_COUNT) >= min(expected, floor + step),
                     timeout=300, interval=0.05, what="consumer progress")
            kill9(consumer)
            kill_log.append(("consumer", count(inbox_db, INBOX_COUNT), writing()))
            consumer = catalog.start("sync_consume")
            # the relay, once it published `step` more (it may be mid-batch, confirmed by the broker but unmarked)
            floor = count(outbox_db, PUBLISHED_COUNT)
            wait_for(lambda floor=floor: count(outbox_db, PUBLISHED_COUNT) >= min(expected, floor + step),
                     timeout=300, interval=0.05, what="relay progress")
            kill9(relay)
            kill_log.append(("relay", count(outbox_db, PUBLISHED_COUNT), writing()))
            relay = monolith.start("sync_relay")
        for process in writer_procs:
            process.wait(timeout=600)
            assert process.returncode == 0, Path(process.log_path).read_text()[-3000:]
        outbox = monolith.shell_json(OUTBOX_STATS)
        events = outbox["pending"] + outbox["published"]
        assert events == expected, outbox
        wait_for(lambda: count(inbox_db, INBOX_COUNT) >= events, timeout=600, interval=0.2,
                 what=lambda: f"every event in the inbox ({catalog.shell_json(INBOX_STATS)} of {events})")
        applied_at = time.monotonic()
        stats = catalog.shell_json(INBOX_STATS)
        # nothing lost, nothing recorded (let alone applied) twice
        assert stats["inbox"] == stats["distinct"] == events and stats["dead"] == 0, stats
        issued = monolith.shell_json(VERSIONS.format(model="AggregateVersion"))
        applied = catalog.shell_json(VERSIONS.format(model="AppliedVersion"))
        assert applied == issued  # every product ends on its newest version
        monolith.serve()
        catalog.serve()
        differences = {}
        for aggregate in ("category", "product"):
            result = monolith.run("sync_verify", "--aggregate", aggregate, "--source", monolith.url,
                                  "--follower", catalog.url, "--buckets", "16", check=False)
            assert result.returncode == 0 and " 0 difference(s)" in result.stdout, result.stdout + result.stderr
            differences[aggregate] = 0
        return {"broker": broker_url.split("://")[0], "writers": writers, "events": events, "updates": updates,
                "kills": kill_log, "inbox": stats, "differences": differences,
                "seconds_to_applied": round(applied_at - started, 1)}
    finally:
        monolith.stop_all()
        catalog.stop_all()
        if databases is not None:
            databases.drop_all()
        if not broker_url.startswith(("sqlite-queue://", "filesystem://")):
            broker_cleanup(broker_url, monolith.env["STRANGLER_SYNC_NAMESPACE"])
