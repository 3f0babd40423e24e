"""Automatic capture end to end with real processes: writes that never call event_publish reach the follower.

The monolith gets the product capture triggers, then changes products only through paths that bypass its
services (bulk_create of 10,000 rows, save, bulk_update, QuerySet.update of every row, raw SQL, deletes and,
on PostgreSQL, a psql session); its relay publishes the captured rows, the catalog service consumes them,
and sync_verify finds 0 differences.
"""

from __future__ import annotations

import os
import subprocess
from urllib.parse import urlparse

import pytest

from tests.strangler_sync.processes import (
    INBOX_STATS,
    OUTBOX_STATS,
    PgDatabases,
    broker_cleanup,
    two_projects,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

WRITES = """
import json
from decimal import Decimal
from django.db import connection, transaction
import strangler_sync.services
from monolith.catalog.models import Product
from monolith.events import PRODUCT
from strangler_sync.capture import capture_sql

def refuse(**kwargs):
    raise AssertionError("event_publish was called")
strangler_sync.services.event_publish = refuse  # nothing below may depend on it

install, _ = capture_sql(config=PRODUCT.bind(capture="automatic"), origin="monolith", vendor=connection.vendor)
with transaction.atomic(), connection.cursor() as cursor:
    for statement in install:
        cursor.execute(statement)
Product.objects.bulk_create([Product(sku=f"C-{i}", slug=f"c-{i}", name=f"Captured {i}", price=Decimal("4.20"),
                                     images=[f"https://img.example/{i}.png"]) for i in range(10_000)], batch_size=2000)
first = Product.objects.order_by("id").first()
first.name = "saved"
first.save()
some = list(Product.objects.order_by("id")[10:510])
for item in some:
    item.price = Decimal("7.25")
Product.objects.bulk_update(some, ["price"], batch_size=250)
assert Product.objects.update(is_active=False) == 10_000
with connection.cursor() as cursor:
    cursor.execute("UPDATE catalog_product SET name = name || ' (raw)' WHERE id % 7 = 0")
Product.objects.filter(id__in=list(Product.objects.order_by("-id").values_list("id", flat=True)[:100])).delete()
Product.objects.order_by("id")[5].delete()
print(json.dumps({"products": Product.objects.count()}))
"""


def _capture_reaches_the_follower(tmp_path, *, broker_url: str, databases: PgDatabases | None) -> None:
    monolith, catalog = two_projects(tmp_path, broker_url=broker_url, databases=databases)
    try:
        written = monolith.shell_json(WRITES)
        assert written["products"] == 10_000 - 101
        if databases is not None:  # a DBA's psql session, outside Django altogether
            url = urlparse(monolith.env["DATABASE_URL"])
            subprocess.run(["psql", "-v", "ON_ERROR_STOP=1", "-h", url.hostname, "-p", str(url.port or 5432), "-U",
                            url.username, "-d", url.path.lstrip("/"), "-c",
                            "UPDATE catalog_product SET description = 'edited in psql' WHERE id % 10 = 3"],
                           check=True, capture_output=True, timeout=120, env=os.environ)
        events = sum(monolith.shell_json(OUTBOX_STATS)[status] for status in ("pending", "published"))
        assert events > 2 * 10_000
        catalog.start("sync_consume")
        monolith.start("sync_relay")
        wait_for(lambda: catalog.shell_json(INBOX_STATS)["inbox"] == events, timeout=600,
                 interval=2, what="every captured event in the follower's inbox")
        assert catalog.shell_json(INBOX_STATS)["dead"] == 0
        monolith.serve()
        catalog.serve()
        result = monolith.run("sync_verify", "--aggregate", "product", "--source", monolith.url, "--follower",
                              catalog.url, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert " 0 difference(s)" in result.stdout
        assert f"source {written['products']} rows, follower {written['products']} rows" in result.stdout
    finally:
        monolith.stop_all()
        catalog.stop_all()
        if not broker_url.startswith("filesystem"):
            broker_cleanup(broker_url, monolith.env["STRANGLER_SYNC_NAMESPACE"])


@pytest.mark.backend_independent  # SQLite files and a broker of its own: CI's pass 1 runs it
def test_captured_writes_reach_the_follower_on_sqlite(tmp_path):
    _capture_reaches_the_follower(tmp_path, broker_url="filesystem://", databases=None)


@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_captured_writes_reach_the_follower_on_postgresql_and_rabbitmq(tmp_path, rabbitmq_url):
    databases = PgDatabases()
    try:
        _capture_reaches_the_follower(tmp_path, broker_url=rabbitmq_url, databases=databases)
    finally:
        databases.drop_all()
