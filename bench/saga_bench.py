#!/usr/bin/env python3
"""Checkout through the inventory service (the saga) next to the local checkout, and how fast it fails.

    .venv/bin/python bench/saga_bench.py [--orders 60]

The monolith runs in this process (Django test client, throwaway SQLite, fake payments); the inventory
service is a real process (`extracted/inventory/manage.py runserver`, its own SQLite) loaded from the
monolith's data with its own loader. Timed, p50/p95 ms per checkout: local (the monolith owns stock),
through the service (stock flipped to "inventory": reserve -> pay -> confirm over HTTP), then failures:
the service down (connection refused), the service stalled (every call held past the 0.5 s timeout),
and the breaker open (no call made at all). Prints a table, writes bench/results/saga-sqlite.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS_DIR = ROOT / "bench" / "results"
INVENTORY_MANAGE = ROOT / "extracted" / "inventory" / "manage.py"
TOKEN = "saga-bench-token-0123456789"
ADDRESS = {"name": "Bench Buyer", "line1": "1 Load St", "city": "Testville", "postal_code": "12345", "country": "US"}


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stalled_server(seconds: float) -> ThreadingHTTPServer:
    """Accepts connections and answers nothing for `seconds` (a stuck service)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            time.sleep(seconds)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=60, help="checkouts timed per successful mode")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="saga-bench-"))
    ownership = workdir / "ownership.json"
    os.environ.update(STRANGLER_VAR_DIR=str(workdir), DJANGO_SETTINGS_MODULE="monolith.settings", DEBUG="0",
                      SECRET_KEY="saga-bench-not-secret", LOG_LEVEL="ERROR", STRANGLER_SYNC_RELAY_TRIGGER="none",
                      STRANGLER_OWNERSHIP_FILE=str(ownership), DATABASE_URL=f"sqlite:///{workdir / 'monolith.sqlite3'}")
    import django

    django.setup()
    logging.getLogger("django.request").setLevel(logging.CRITICAL)  # 503s are the point of part 2
    logging.getLogger("monolith.orders.saga").setLevel(logging.CRITICAL)
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core import serializers
    from django.core.management import call_command
    from django.test import Client

    from monolith.accounts.services import address_create
    from monolith.catalog.models import Product
    from monolith.catalog.services import product_create
    from monolith.inventory.models import StockItem
    from monolith.inventory.services import stock_set
    from monolith.orders.inventory_gateway import inventory_breakers_reset
    from monolith.payments import fake
    from strangler_sync.ownership import ownership_set

    settings.ALLOWED_HOSTS = ["testserver"]
    call_command("migrate", verbosity=0)
    products = [product_create(sku=f"S-{i:03d}", name=f"Saga product {i}", price=f"{10 + i}.50") for i in range(10)]
    for product in products:
        stock_set(product_id=product.id, quantity_on_hand=1_000_000)
    user = get_user_model().objects.create_user(username="buyer")
    address_create(user=user, **ADDRESS)
    client = Client()
    client.force_login(user)

    # the inventory service, loaded from the monolith's rows with its own loader
    env = {**os.environ, "INVENTORY_DATABASE_URL": f"sqlite:///{workdir / 'inventory.sqlite3'}",
           "INVENTORY_API_TOKENS": TOKEN, "DEBUG": "1", "LOG_LEVEL": "ERROR"}
    env.pop("DATABASE_URL")
    env.pop("DJANGO_SETTINGS_MODULE")
    subprocess.run([sys.executable, str(INVENTORY_MANAGE), "migrate", "-v", "0"], env=env, check=True, cwd=ROOT)
    dump = workdir / "dump.json"
    dump.write_text(serializers.serialize("json", [*Product.objects.all(), *StockItem.objects.all()]))
    subprocess.run([sys.executable, str(INVENTORY_MANAGE), "inventory_import", str(dump)], env=env, check=True,
                   cwd=ROOT, capture_output=True)
    port = _free_port()
    service = subprocess.Popen([sys.executable, str(INVENTORY_MANAGE), "runserver", "--noreload", f"127.0.0.1:{port}"],
                               env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    stalled = _stalled_server(5.0)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

        last_error: list = []

        def checkout(key: str, n: int) -> tuple[float, int, str | None]:
            for product in (products[n % 10], products[(n + 3) % 10]):
                client.post("/api/cart/items/", {"product": product.id, "quantity": 1}, content_type="application/json")
            started = time.perf_counter()
            response = client.post("/api/orders/", {"card_number": fake.CARD_SUCCESS}, content_type="application/json",
                                   HTTP_IDEMPOTENCY_KEY=key)
            elapsed = (time.perf_counter() - started) * 1000
            code = None if response.status_code == 201 else response.json()["error"]["code"]
            if code:
                last_error[:] = [response.json()["error"]]
            if response.status_code != 201:
                client.delete("/api/cart/")
            return elapsed, response.status_code, code

        def timed(mode: str, count: int, expect: int) -> dict:
            samples = []
            for n in range(count + 1):
                elapsed, status, code = checkout(f"m{len(rows)}-{n}", n)
                assert status == expect, (mode, status, code, last_error)
                if n:  # the first one warms up connections and caches
                    samples.append(elapsed)
            return {"mode": mode, "status": expect, "n": len(samples), "p50_ms": round(_percentile(samples, 0.5), 1),
                    "p95_ms": round(_percentile(samples, 0.95), 1)}

        def configure(url: str) -> None:
            settings.INVENTORY_SERVICE = {"URL": url, "TOKEN": TOKEN, "TIMEOUT": 0.5, "BREAKER_FAILURES": 1_000_000,
                                          "BREAKER_COOLDOWN": 10.0}
            inventory_breakers_reset()

        rows: list[dict] = []
        rows.append(timed("local (monolith owns stock)", args.orders, 201))
        ownership_set(aggregate_type="stock", owner="inventory")
        configure(f"http://127.0.0.1:{port}")
        rows.append(timed("saga through the service", args.orders, 201))
        configure(f"http://127.0.0.1:{_free_port()}")
        rows.append(timed("service down (refused)", 20, 503))
        configure(f"http://127.0.0.1:{stalled.server_address[1]}")
        rows.append(timed("service stalled (0.5 s timeout)", 5, 503))
        settings.INVENTORY_SERVICE = {**settings.INVENTORY_SERVICE, "BREAKER_FAILURES": 2}
        inventory_breakers_reset()
        rows.append(timed("breaker open (no call)", 20, 503))
    finally:
        stalled.shutdown()
        service.terminate()
        service.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\ncheckout, {args.orders} orders per successful mode (ms per POST /api/orders/, SQLite, {platform.node()})")
    print(f"{'mode':34} {'status':>6} {'n':>4} {'p50':>8} {'p95':>8}")
    for row in rows:
        print(f"{row['mode']:34} {row['status']:>6} {row['n']:>4} {row['p50_ms']:>8} {row['p95_ms']:>8}")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": "saga", "database": "sqlite", "orders": args.orders, "rows": rows,
              "load_average": os.getloadavg(), "python": platform.python_version()}
    (RESULTS_DIR / "saga-sqlite.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {RESULTS_DIR / 'saga-sqlite.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
