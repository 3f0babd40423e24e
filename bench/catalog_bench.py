#!/usr/bin/env python3
"""Monolith catalog at scale: seed_storefront time for N products, then latency of the storefront's catalog reads.

    .venv/bin/python bench/catalog_bench.py [--products 100000] [--users 1000] [--repeat 20]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<empty db> .venv/bin/python bench/catalog_bench.py

Without DATABASE_URL a throwaway SQLite file in a temporary folder is used. With it, the database must be
empty (it is migrated and seeded here; drop it afterwards). Requests go through Django's test client in
this process (full middleware, views, templates and SQL; no HTTP server), so the numbers are the app's own
cost. Prints a table (p50/p95 ms per URL) and writes bench/results/catalog-<sqlite|postgresql>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS_DIR = ROOT / "bench" / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=20, help="requests per URL (after one warm-up)")
    parser.add_argument("--out", type=Path, help="default: bench/results/catalog-<database>.json")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="catalog-bench-")
    os.environ.setdefault("STRANGLER_VAR_DIR", workdir)  # the embedded SQLite default lands here
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monolith.settings")
    os.environ["DEBUG"] = "0"  # no per-query bookkeeping, as in production
    os.environ.setdefault("SECRET_KEY", "catalog-bench-not-secret")
    os.environ.setdefault("LOG_LEVEL", "WARNING")

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from monolith.catalog.models import Product
    from monolith.catalog.seeding import storefront_seed

    call_command("migrate", verbosity=0)
    if Product.objects.exists():
        sys.exit("error: the database already has products; point DATABASE_URL at an empty database")
    seeded = storefront_seed(products=args.products, users=args.users, seed=args.seed, progress=True)

    product = Product.objects.filter(is_active=True, reviews__isnull=False).order_by("id").first()
    middle = max(1, args.products // 24 // 2)
    urls = [
        ("page: product list", "/"),
        ("page: list, deep page", f"/?page={middle}"),
        ("page: category + sort", "/c/electronics/?ordering=-price"),
        ("page: search", "/?q=amber+lamp"),
        ("page: product detail", f"/p/{product.slug}/"),
        ("api: products", "/api/products/"),
        ("api: filtered", "/api/products/?category=books&min_price=10&max_price=100&ordering=price"),
        ("api: search", "/api/products/?q=lamp"),
        ("api: product", f"/api/products/{product.id}/"),
        ("api: rating", f"/api/products/{product.id}/rating/"),
        ("api: reviews", f"/api/reviews/?product={product.id}"),
    ]
    client = Client()
    rows = []
    for label, url in urls:
        status = client.get(url).status_code  # warm-up (and a check)
        timings = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
        timings.sort()
        p95 = timings[min(len(timings) - 1, int(round(0.95 * (len(timings) - 1))))]
        rows.append({"name": label, "url": url, "status": status, "p50_ms": round(statistics.median(timings), 2),
                     "p95_ms": round(p95, 2)})  # fmt: skip

    vendor = connection.vendor
    print(f"\nseed_storefront: {seeded.products} products, {seeded.stock_items} stock rows, {seeded.users} users, "
          f"{seeded.reviews} reviews in {seeded.seconds:.1f} s on {vendor}\n")  # fmt: skip
    print(f"{'request':<24} {'status':>6} {'p50 ms':>8} {'p95 ms':>8}  url")
    for row in rows:
        print(f"{row['name']:<24} {row['status']:>6} {row['p50_ms']:>8.1f} {row['p95_ms']:>8.1f}  {row['url']}")
    out = args.out or RESULTS_DIR / f"catalog-{vendor}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "catalog",
        "database": vendor,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "seed": {"products": seeded.products, "users": seeded.users, "reviews": seeded.reviews,
                 "stock_items": seeded.stock_items, "seconds": seeded.seconds},
        "repeat": args.repeat,
        "requests": rows,
    }, indent=2) + "\n")  # fmt: skip
    print(f"\nwrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 0 if all(row["status"] == 200 for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
