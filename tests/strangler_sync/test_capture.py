"""Automatic capture on PostgreSQL and SQLite: every way a product row changes writes the outbox row event_publish
would, with no event_publish call on the path.

The triggers are installed in the test transaction (DDL is transactional on both, so they vanish with it),
except for the psql and concurrency test (PostgreSQL), which needs them committed and removes them afterwards.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection, transaction

from monolith.catalog.models import Category, Product
from monolith.events import PRODUCT
from strangler_sync.capture import capture_context, capture_sql
from strangler_sync.handlers import SyncEvent, applying_synced_event
from strangler_sync.models import OutboxEvent
from strangler_sync.schemas import payload_validate
from strangler_sync.snapshots import aggregate_payload

AUTOMATIC_PRODUCT = "tests.strangler_sync.test_capture.AUTOMATIC"
AUTOMATIC = PRODUCT.bind(capture="automatic")
AUTOMATIC_WITH_SNAPSHOT = PRODUCT.bind(capture="automatic", snapshot="monolith.reviews.sync.review_payload")


def capture_triggers() -> set[str]:
    """The names of the capture triggers in the database."""
    catalog = ("SELECT tgname FROM pg_trigger" if connection.vendor == "postgresql"
               else "SELECT name FROM sqlite_master WHERE type = 'trigger'")
    with connection.cursor() as cursor:
        cursor.execute(catalog)
        return {row[0] for row in cursor.fetchall() if row[0].startswith("strangler_capture_")}


@pytest.fixture
def automatic(sync_env):
    """Product declared with automatic capture; its triggers (re)installed in the test's transaction.

    Returns the statements that undo what the fixture added (nothing when the migrations had installed them)."""
    settings = sync_env
    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC,
                               "AGGREGATES": [AUTOMATIC_PRODUCT, "monolith.events.CATEGORY"]}
    migrated = capture_triggers()
    install, remove = capture_sql(config=AUTOMATIC, origin="monolith", vendor=connection.vendor)
    with connection.cursor() as cursor:
        for statement in install:
            cursor.execute(statement)
    return [] if migrated else remove


def product_rows(**filters) -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(aggregate_type="product", **filters).order_by("id"))


def make(n: int, **fields) -> Product:
    values = {"sku": f"SKU-{n}", "slug": f"product-{n}", "name": f"Product {n}", "price": Decimal("10.00")}
    values.update(fields)
    return Product.objects.create(**values)


@pytest.mark.django_db
def test_trigger_payload_equals_event_publish_payload_field_by_field(automatic):
    category = Category.objects.create(name="Tools", slug="tools")
    product = make(1, price=Decimal("1234.50"), images=["a.png", {"alt": "b"}], category=category,
                   description="it's \"quoted\" ünïcode")
    # microseconds zero: isoformat() drops them, the trigger must too
    Product.objects.filter(pk=product.pk).update(created_at=datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
    product.refresh_from_db()
    created, updated = product_rows()
    expected = aggregate_payload(aggregate_type="product", instance=product)
    assert created.event_type == "product.created" and updated.event_type == "product.updated"
    for name, value in expected.items():
        assert updated.payload[name] == value, name
    assert set(updated.payload) == set(expected)
    payload_validate(event_type="product.updated", schema_version=1, payload=updated.payload)
    assert (created.version, updated.version) == (1, 2)
    assert updated.origin == "monolith" and updated.status == "pending" and updated.aggregate_id == str(product.pk)
    assert updated.schema_version == 1


@pytest.mark.django_db
def test_every_orm_path_and_raw_sql_is_captured(automatic):
    product = make(1)
    product.name = "Renamed"
    product.save()
    Product.objects.bulk_create([Product(sku=f"B-{i}", slug=f"b-{i}", name=f"B {i}", price=Decimal("1.00"))
                                 for i in range(10_000)])
    assert OutboxEvent.objects.filter(event_type="product.created").count() == 10_001
    bulk = list(Product.objects.filter(sku__startswith="B-")[:100])
    for item in bulk:
        item.price = Decimal("2.00")
    Product.objects.bulk_update(bulk, ["price"])
    assert Product.objects.update(is_active=False) == 10_001
    with connection.cursor() as cursor:
        cursor.execute("UPDATE catalog_product SET currency = 'EUR' WHERE id = %s", [product.pk])
    after_raw_sql = aggregate_payload(aggregate_type="product", instance=Product.objects.get(pk=product.pk))
    product.save()  # the stale instance writes USD and is_active=True back: a change, captured
    Product.objects.filter(sku__startswith="B-9").delete()

    rows = product_rows(aggregate_id=str(product.pk))
    assert [r.event_type for r in rows] == ["product.created", "product.updated", "product.updated",
                                            "product.updated", "product.updated"]
    assert [r.version for r in rows] == [1, 2, 3, 4, 5]
    assert rows[2].payload["is_active"] is False and rows[3].payload == after_raw_sql
    assert rows[4].payload["currency"] == "USD"  # the stale instance's save() wrote USD back, and was captured
    assert OutboxEvent.objects.filter(event_type="product.updated", version=2, payload__price="2.00").count() == 100
    deleted = OutboxEvent.objects.filter(event_type="product.deleted")
    assert deleted.count() == 1111 and all(set(e.payload) == {"id"} for e in deleted[:5])


@pytest.mark.django_db
def test_an_unchanged_save_emits_nothing(automatic):
    product = make(1)
    product.save(update_fields=["name"])
    assert len(product_rows()) == 1


@pytest.mark.django_db
def test_a_rolled_back_transaction_leaves_no_outbox_row(automatic):
    with pytest.raises(RuntimeError), transaction.atomic():
        make(1)
        assert len(product_rows()) == 1
        raise RuntimeError("roll back")
    assert product_rows() == []


@pytest.mark.django_db(transaction=True)
def test_flush_empties_the_tables_without_capturing_whatever_order_it_deletes_them_in(automatic, monkeypatch):
    """manage.py flush (what every transaction=True test ends with) is no change of an aggregate: on SQLite it
    is a DELETE per table in set order, so the product table may be emptied after the outbox; force that."""
    from django.core.management import call_command
    from django.core.management.commands import flush

    from strangler_sync.models import AggregateVersion

    def product_table_last(style, connection, **kwargs):
        statements = django_sql_flush(style, connection, **kwargs)
        return sorted(statements, key=lambda statement: Product._meta.db_table in statement)

    django_sql_flush = flush.sql_flush
    monkeypatch.setattr(flush, "sql_flush", product_table_last)
    make(1).delete()
    make(2)
    assert len(product_rows()) == 3
    call_command("flush", interactive=False, verbosity=0)
    assert not Product.objects.exists()
    assert product_rows() == [] and not AggregateVersion.objects.exists()
    make(3)  # capture is on again after the flush
    assert [row.event_type for row in product_rows()] == ["product.created"]


@pytest.mark.django_db
def test_applying_a_synced_event_emits_nothing_and_own_writes_after_it_do(automatic):
    event = SyncEvent(message_id="m", event_type="product.updated", aggregate_type="product", aggregate_id="1",
                      version=1, schema_version=1, payload={}, occurred_at=datetime.now(UTC), origin="catalog",
                      correlation_id="")
    with transaction.atomic():
        with applying_synced_event(event):
            make(1)
        make(2)
    assert [r.aggregate_id for r in product_rows()] == [str(Product.objects.get(sku="SKU-2").pk)]


@pytest.mark.django_db
def test_correlation_id_reaches_the_captured_event(automatic):
    with transaction.atomic(), capture_context(correlation_id="req-42"):
        make(1)
    make(2)
    assert [r.correlation_id for r in product_rows()] == ["req-42", ""]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_psql_session_and_concurrent_writers_are_captured_with_monotonic_versions(automatic):
    remove = automatic  # the fixture's DDL is committed here (no test transaction): undo it afterwards
    try:
        product = make(1)
        database = connection.settings_dict["NAME"]
        environment = {**os.environ, "PGHOST": "127.0.0.1", "PGUSER": "postgres"}
        subprocess.run(["psql", "-v", "ON_ERROR_STOP=1", "-d", database, "-c",
                        f"UPDATE catalog_product SET name = 'from psql' WHERE id = {product.pk}"],
                       check=True, env=environment, capture_output=True, timeout=60)
        assert product_rows()[-1].payload["name"] == "from psql"

        # four writer processes (psql sessions, each UPDATE its own transaction) on one row at once
        def script(n: int) -> str:  # distinct names: an UPDATE that changes nothing emits nothing
            return "".join(f"UPDATE catalog_product SET name = 'writer {n} #{i}' WHERE id = {product.pk};\n"
                           for i in range(25))

        writers = [subprocess.Popen(["psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", database], stdin=subprocess.PIPE,
                                    env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                   for _ in range(4)]
        for n, writer in enumerate(writers):
            writer.stdin.write(script(n))
            writer.stdin.close()
        for writer in writers:
            assert writer.wait(timeout=120) == 0, writer.stderr.read()
        rows = product_rows(aggregate_id=str(product.pk))
        versions = [r.version for r in rows]  # outbox ids follow insert order; versions must follow it too
        assert versions == list(range(1, 103))
        assert rows[-1].payload["name"] == Product.objects.get(pk=product.pk).name
    finally:
        with connection.cursor() as cursor:
            for statement in remove:
                cursor.execute(statement)


@pytest.mark.django_db
def test_an_admin_edit_is_captured_once_with_the_requests_correlation_id(automatic, admin_client, settings):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "strangler_sync.capture.CaptureContextMiddleware"]
    product = make(1)
    form = {"sku": "SKU-1", "slug": "product-1", "name": "Edited in the admin", "description": "", "price": "12.30",
            "currency": "USD", "is_active": "on", "images": "[]", "category": ""}
    answer = admin_client.post(f"/admin/catalog/product/{product.pk}/change/", form, HTTP_X_REQUEST_ID="admin-req-1")
    assert answer.status_code == 302, answer.content[:2000]
    created, updated = product_rows()
    assert updated.payload == aggregate_payload(aggregate_type="product", instance=Product.objects.get(pk=product.pk))
    assert updated.payload["price"] == "12.30" and updated.version == 2
    if connection.vendor == "postgresql":  # SQLite: only inside capture_context() (documented)
        assert updated.correlation_id == "admin-req-1"
        with connection.cursor() as cursor:  # and the setting did not outlive the request
            cursor.execute("SELECT current_setting('strangler.correlation_id', true)")
            assert cursor.fetchone()[0] in ("", None)


@pytest.mark.django_db
def test_event_publish_leaves_an_automatic_aggregates_change_events_to_the_trigger(automatic):
    from strangler_sync.services import event_publish

    with transaction.atomic():
        product = make(1)
        payload = aggregate_payload(aggregate_type="product", instance=product)
        assert event_publish(event_type="product.created", aggregate_type="product", aggregate_id=product.pk,
                             payload=payload) is None
        snapshot = event_publish(event_type="product.snapshot", aggregate_type="product", aggregate_id=product.pk,
                                 payload=payload, version=1)
    assert [r.event_type for r in product_rows()] == ["product.created", "product.snapshot"]
    assert snapshot is not None


@pytest.mark.django_db
def test_the_consumer_applying_the_owners_events_emits_nothing_on_both_paths(automatic):
    from strangler_sync.consumer import inbox_apply, inbox_apply_batch
    from tests.strangler_sync.conftest import product_payload

    def synced(product_id: int, version: int) -> SyncEvent:
        return SyncEvent(message_id=str(uuid.uuid4()), event_type="product.updated", aggregate_type="product",
                         aggregate_id=str(product_id), version=version, schema_version=1,
                         payload=product_payload(product_id, name=f"v{version}"), occurred_at=datetime.now(UTC),
                         origin="catalog", correlation_id="")

    assert inbox_apply(event=synced(1, 1)) == "applied"
    assert inbox_apply_batch(events=[synced(2, 1), synced(3, 1), synced(1, 2)]) == ["applied"] * 3
    assert Product.objects.get(pk=1).name == "v2" and Product.objects.count() == 3
    assert product_rows() == []
    Product.objects.filter(pk=3).update(name="own write")  # the setting ended with the consumer's transaction
    (own,) = product_rows()
    assert own.version == 2  # above the version this project applied, as event_publish numbers it
