#!/usr/bin/env python3
"""Monolith checkout: latency of add-to-cart + checkout through the JSON API, then racing buyers on one hot product.

    .venv/bin/python bench/checkout_bench.py [--orders 100] [--buyers 8] [--hot-stock 40]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<empty db> .venv/bin/python bench/checkout_bench.py

Without DATABASE_URL a throwaway SQLite file in a temporary folder is used; with it, the database must be
empty (it is migrated here; drop it afterwards). Requests go through Django's test client in this process
(full middleware, DRF, SQL; no HTTP server) with the fake payment provider, so the numbers are the
checkout's own cost: order + reservation in one transaction, the charge outside it, then finalising.

Part 1 times sequential requests (p50/p95 ms). Part 2 starts --buyers threads (each its own database
connection) that keep buying one unit of a product with --hot-stock units until it is sold out, and
checks that exactly --hot-stock orders were paid and stock never went negative. Prints a table and
writes bench/results/checkout-<database>.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS_DIR = ROOT / "bench" / "results"
ADDRESS = {"name": "Bench Buyer", "line1": "1 Load St", "city": "Testville", "postal_code": "12345", "country": "US"}


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100, help="sequential checkouts to time")
    parser.add_argument("--buyers", type=int, default=8, help="concurrent buyer threads in part 2")
    parser.add_argument("--hot-stock", type=int, default=40, help="units of the hot product in part 2")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="checkout-bench-")
    os.environ.setdefault("STRANGLER_VAR_DIR", workdir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monolith.settings")
    os.environ["DEBUG"] = "0"
    os.environ.setdefault("SECRET_KEY", "checkout-bench-not-secret")
    os.environ.setdefault("LOG_LEVEL", "ERROR")

    import django

    django.setup()
    logging.getLogger("django.request").setLevel(logging.ERROR)  # 402/409 are expected here, not news
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from monolith.accounts.services import address_create
    from monolith.catalog.models import Product
    from monolith.catalog.services import product_create
    from monolith.inventory.models import StockItem
    from monolith.inventory.services import stock_set
    from monolith.orders.models import Order
    from monolith.payments import fake

    settings.ALLOWED_HOSTS = ["testserver"]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    call_command("migrate", verbosity=0)
    if Product.objects.exists():
        sys.exit("error: the database already has products; point DATABASE_URL at an empty database")
    database = connection.vendor

    products = [product_create(sku=f"B-{i:03d}", name=f"Bench product {i}", price=f"{10 + i}.50") for i in range(20)]
    for product in products:
        stock_set(product_id=product.id, quantity_on_hand=1_000_000)
    User = get_user_model()

    def buyer(name: str) -> Client:
        user = User.objects.create_user(username=name)
        address_create(user=user, **ADDRESS)
        client = Client()
        client.force_login(user)
        return client

    # Part 1: one customer, sequential requests.
    client = buyer("sequential")
    add_ms, checkout_ms, decline_ms = [], [], []
    for i in range(args.orders + 1):
        for product in (products[i % 20], products[(i + 7) % 20]):
            started = time.perf_counter()
            response = client.post("/api/cart/items/", {"product": product.id, "quantity": 2},
                                   content_type="application/json")
            add_ms.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 201, response.content
        card = fake.CARD_DECLINED if i % 5 == 4 else fake.CARD_SUCCESS
        started = time.perf_counter()
        response = client.post("/api/orders/", {"card_number": card}, content_type="application/json",
                               HTTP_IDEMPOTENCY_KEY=f"seq-{i}")
        elapsed = (time.perf_counter() - started) * 1000
        if card == fake.CARD_SUCCESS:
            assert response.status_code == 201, response.content
            checkout_ms.append(elapsed)
        else:
            assert response.status_code == 402, response.content
            decline_ms.append(elapsed)
            client.delete(f"/api/cart/items/{products[i % 20].id}/")
            client.delete(f"/api/cart/items/{products[(i + 7) % 20].id}/")
        if i == 0:
            add_ms.clear()
            checkout_ms.clear()  # first round is warm-up

    # Part 2: racing buyers, one hot product.
    hot = product_create(sku="HOT-1", name="Hot product", price="99.00")
    stock_set(product_id=hot.id, quantity_on_hand=args.hot_stock)
    clients = [buyer(f"racer{n}") for n in range(args.buyers)]
    counts = {"paid": 0, "out_of_stock": 0, "other": 0}
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(args.buyers)

    def race(n: int) -> None:
        racer = clients[n]
        try:
            barrier.wait(timeout=30)
            for attempt in range(args.hot_stock + 5):
                racer.post("/api/cart/items/", {"product": hot.id, "quantity": 1}, content_type="application/json")
                started = time.perf_counter()
                response = racer.post("/api/orders/", {"card_number": fake.CARD_SUCCESS},
                                      content_type="application/json", HTTP_IDEMPOTENCY_KEY=f"race-{n}-{attempt}")
                elapsed = (time.perf_counter() - started) * 1000
                code = response.json().get("error", {}).get("code") if response.status_code != 201 else None
                with lock:
                    latencies.append(elapsed)
                    if response.status_code == 201:
                        counts["paid"] += 1
                    elif code == "out_of_stock":
                        counts["out_of_stock"] += 1
                    else:
                        counts["other"] += 1
                if code == "out_of_stock":
                    return
        finally:
            connection.close()

    threads = [threading.Thread(target=race, args=(n,)) for n in range(args.buyers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    race_seconds = time.perf_counter() - started
    hot_stock = StockItem.objects.get(product=hot)
    hot_orders = Order.objects.filter(status="paid", lines__product=hot).distinct().count()
    correct = (hot_orders == args.hot_stock == counts["paid"] and hot_stock.quantity_on_hand == 0
               and hot_stock.quantity_reserved == 0 and counts["other"] == 0)

    rows = [
        ("add to cart (POST /api/cart/items/)", add_ms),
        ("checkout, paid (POST /api/orders/)", checkout_ms),
        ("checkout, declined + compensated", decline_ms),
        (f"checkout under contention ({args.buyers} buyers)", latencies),
    ]
    print(f"\ncheckout bench on {database} (ms per request)")
    print(f"{'operation':<45} {'n':>5} {'p50':>8} {'p95':>8}")
    result_rows = []
    for label, values in rows:
        p50, p95 = statistics.median(values), _percentile(values, 0.95)
        print(f"{label:<45} {len(values):>5} {p50:>8.1f} {p95:>8.1f}")
        result_rows.append({"operation": label, "n": len(values), "p50_ms": round(p50, 2), "p95_ms": round(p95, 2)})
    throughput = counts["paid"] / race_seconds
    print(f"\nrace: {args.buyers} buyers for {args.hot_stock} units: {counts['paid']} paid, "
          f"{counts['out_of_stock']} out_of_stock, {counts['other']} other in {race_seconds:.2f}s "
          f"({throughput:.0f} paid orders/s); stock on hand {hot_stock.quantity_on_hand}, "
          f"reserved {hot_stock.quantity_reserved}: {'CORRECT' if correct else 'WRONG'}")

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"checkout-{database}.json"
    out.write_text(json.dumps({
        "bench": "checkout",
        "database": database,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "rows": result_rows,
        "race": {"buyers": args.buyers, "hot_stock": args.hot_stock, **counts, "seconds": round(race_seconds, 3),
                 "paid_per_second": round(throughput, 1), "stock_on_hand": hot_stock.quantity_on_hand,
                 "stock_reserved": hot_stock.quantity_reserved, "correct": correct},
    }, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())
