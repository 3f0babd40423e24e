#!/usr/bin/env python3
"""Write cost of automatic capture (triggers) vs explicit event_publish vs no capture, side by side in one run.

    createdb -h 127.0.0.1 -U postgres capture_bench
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/capture_bench \\
        flock /tmp/strangler-bench.lock .venv/bin/python bench/capture_bench.py [--single 1000] [--bulk 10000]

Without DATABASE_URL a throwaway SQLite file is used. With it, the database must be empty (migrated and
filled here; drop it afterwards). Two workloads on the storefront's products, each in the three modes:

* single-row updates: read a product, change its name, ``save()``, one transaction each (explicit mode also
  builds the payload and calls ``event_publish``, as a write service does);
* a bulk update of every row: one ``QuerySet.update`` (explicit mode: the update, then one ``event_publish``
  per row in the same transaction, the only way explicit publishing sees a bulk write).

Prints a table (mean per single-row write, total per bulk update, outbox rows written) and writes it as
JSON (``--json``, default bench/results/capture-<vendor>.json). Target: automatic <= explicit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=1000, help="single-row updates per mode")
    parser.add_argument("--bulk", type=int, default=10_000, help="rows of the bulk update")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("STRANGLER_VAR_DIR", tempfile.mkdtemp(prefix="capture-bench-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monolith.settings")
    os.environ["DEBUG"] = "0"
    os.environ["STRANGLER_SYNC_RELAY_TRIGGER"] = "none"  # the write's own cost: no Celery round trip
    os.environ.setdefault("SECRET_KEY", "capture-bench-not-secret")
    os.environ.setdefault("LOG_LEVEL", "WARNING")

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.db.models import F
    from django.test import override_settings

    from monolith.catalog.models import Product
    from monolith.events import PRODUCT
    from strangler_sync.capture import capture_sql
    from strangler_sync.models import OutboxEvent
    from strangler_sync.services import event_publish
    from strangler_sync.snapshots import aggregate_payload

    call_command("migrate", verbosity=0)
    if Product.objects.exists() or OutboxEvent.objects.exists():
        sys.exit("error: the database is not empty; point DATABASE_URL at an empty database")
    install, remove = capture_sql(config=PRODUCT.bind(capture="automatic"), origin="monolith",
                                  vendor=connection.vendor)

    def run_sql(statements):
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)

    # The storefront's own migrations capture products: the bench installs the triggers only for its automatic
    # round, and declares product explicit for the other two (event_publish leaves automatic aggregates alone).
    run_sql(remove)
    explicit = override_settings(STRANGLER_SYNC={**settings.STRANGLER_SYNC, "AGGREGATES": [
        PRODUCT.bind(capture="explicit") if name == "monolith.events.PRODUCT" else name
        for name in settings.STRANGLER_SYNC["AGGREGATES"]]})
    Product.objects.bulk_create(
        [Product(sku=f"B-{i}", slug=f"b-{i}", name=f"Bench {i}", price=Decimal("9.99"), images=[f"{i}.png"])
         for i in range(args.bulk)], batch_size=2000)
    ids = list(Product.objects.order_by("id").values_list("id", flat=True))

    def single(mode: str, round_: int) -> float:
        begun = time.perf_counter()
        for n in range(args.single):
            with transaction.atomic():
                product = Product.objects.get(pk=ids[n % len(ids)])
                product.name = f"{mode} {round_} {n}"
                product.save()
                if mode == "explicit":
                    event_publish(event_type="product.updated", aggregate_type="product", aggregate_id=product.pk,
                                  payload=aggregate_payload(aggregate_type="product", instance=product))
        return (time.perf_counter() - begun) / args.single * 1e6

    def bulk(mode: str) -> float:
        begun = time.perf_counter()
        with transaction.atomic():
            Product.objects.update(price=F("price") + Decimal("0.01"))
            if mode == "explicit":
                for product in Product.objects.order_by("id").iterator(chunk_size=2000):
                    event_publish(event_type="product.updated", aggregate_type="product", aggregate_id=product.pk,
                                  payload=aggregate_payload(aggregate_type="product", instance=product))
        return time.perf_counter() - begun

    results = []
    for round_, mode in enumerate(("none", "explicit", "automatic")):
        if mode == "automatic":
            run_sql(install)
        else:
            explicit.enable()
        before = OutboxEvent.objects.count()
        single(mode, round_)  # warm-up: caches, plans, the version rows' first insert
        per_write = single(mode, round_ + 10)
        bulk_seconds = bulk(mode)
        results.append({"mode": mode, "single_row_update_us": round(per_write, 1),
                        "bulk_update_rows": len(ids), "bulk_update_s": round(bulk_seconds, 3),
                        "outbox_rows": OutboxEvent.objects.count() - before})
        if mode == "automatic":
            run_sql(remove)
        else:
            explicit.disable()
    print(f"{connection.vendor}: {args.single} single-row updates per mode, bulk update of {len(ids):,} rows")
    print(f"{'mode':<10} {'single-row update':>18} {'bulk update':>12} {'outbox rows':>12}")
    for row in results:
        print(f"{row['mode']:<10} {row['single_row_update_us']:>15.0f} us {row['bulk_update_s']:>10.2f} s "
              f"{row['outbox_rows']:>12,}")
    target = args.json or ROOT / "bench" / "results" / f"capture-{connection.vendor}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"vendor": connection.vendor, "single": args.single, "results": results},
                                 indent=2) + "\n")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
