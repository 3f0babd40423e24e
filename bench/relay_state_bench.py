#!/usr/bin/env python3
"""Cost of GET /sync/relay/ (what the relay gates and the dashboard poll) with a large outbox kept for retention.

    .venv/bin/python bench/relay_state_bench.py [--published 1000000] [--pending 1000] [--repeat 20]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<empty db> .venv/bin/python bench/relay_state_bench.py

Without DATABASE_URL a throwaway SQLite file is used. With it, the database must be empty (migrated and
filled here; drop it afterwards). Requests go through Django's test client in this process (the view's
own cost: middleware, the outbox aggregates, JSON). Prints p50/p95/max ms; target: p95 under 50 ms at 1M
retained rows on PostgreSQL, so a gate polled every second costs the database little.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--published", type=int, default=1_000_000)
    parser.add_argument("--pending", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("STRANGLER_VAR_DIR", tempfile.mkdtemp(prefix="relay-state-bench-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monolith.settings")
    os.environ["DEBUG"] = "0"  # no per-query bookkeeping, as in production
    os.environ.setdefault("SECRET_KEY", "relay-state-bench-not-secret")
    os.environ.setdefault("LOG_LEVEL", "WARNING")

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from strangler_sync.models import OutboxEvent

    call_command("migrate", verbosity=0)
    if OutboxEvent.objects.exists():
        sys.exit("error: the outbox is not empty; point DATABASE_URL at an empty database")
    now = timezone.now()
    started = time.perf_counter()
    for status, count in ((OutboxEvent.Status.PUBLISHED, args.published), (OutboxEvent.Status.PENDING, args.pending)):
        for start in range(0, count, 10_000):
            OutboxEvent.objects.bulk_create(
                OutboxEvent(event_type="product.updated", aggregate_type="product", aggregate_id=str(i), version=1,
                            payload={}, occurred_at=now, origin="monolith", status=status, next_attempt_at=now,
                            published_at=now if status == OutboxEvent.Status.PUBLISHED else None)
                for i in range(start, min(count, start + 10_000)))
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE strangler_sync_outboxevent")
    print(f"filled {args.published:,} published + {args.pending:,} pending rows in "
          f"{time.perf_counter() - started:.1f}s ({connection.vendor})")
    client = Client()
    assert client.get("/sync/relay/").json()["backlog"] == args.pending  # warm-up, and the answer is right
    times = []
    for _ in range(args.repeat):
        begun = time.perf_counter()
        answer = client.get("/sync/relay/")
        times.append((time.perf_counter() - begun) * 1000)
        assert answer.status_code == 200
    times.sort()
    p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
    print(f"GET /sync/relay/: p50 {statistics.median(times):.1f} ms, p95 {p95:.1f} ms, max {times[-1]:.1f} ms "
          f"over {args.repeat} requests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
