"""The consumer's batch path with the product bulk upsert gives exactly what one-by-one application gives."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from extracted import events
from extracted.catalog.products.models import Product
from strangler_sync.consumer import APPLIED, DUPLICATE, STALE, event_parse, inbox_apply, inbox_apply_batch
from strangler_sync.models import AppliedVersion, InboxMessage

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def envelope(event_type: str, product_id: int, version: int, **changes) -> dict:
    payload = {"id": product_id} if event_type == events.PRODUCT_DELETED else {
        "id": product_id, "sku": f"SKU-{product_id}", "slug": f"p-{product_id}", "name": f"P {product_id} v{version}",
        "description": "", "price": f"{version}.50", "currency": "USD", "is_active": True, "category_id": None,
        "images": [], "created_at": T0.isoformat(), "updated_at": (T0 + timedelta(minutes=version)).isoformat(),
        **changes,
    }
    return {
        "message_id": str(uuid.uuid4()), "event_type": event_type, "aggregate_type": "product",
        "aggregate_id": str(product_id), "version": version, "schema_version": 1, "payload": payload,
        "occurred_at": (T0 + timedelta(minutes=version)).isoformat(), "origin": "monolith", "correlation_id": "r",
    }


def history() -> list[dict]:
    """Creates, several updates per product, a delete and a re-create, and one payload without timestamps."""
    bodies = []
    for pid in range(1, 31):
        bodies.append(envelope(events.PRODUCT_CREATED, pid, 1))
        bodies += [envelope(events.PRODUCT_UPDATED, pid, v) for v in range(2, 2 + pid % 4)]
    bodies.append(envelope(events.PRODUCT_DELETED, 5, 9))
    bodies.append(envelope(events.PRODUCT_CREATED, 5, 10, name="re-created"))
    no_timestamps = envelope(events.PRODUCT_UPDATED, 7, 12, name="no timestamps")
    del no_timestamps["payload"]["created_at"], no_timestamps["payload"]["updated_at"]
    bodies.append(no_timestamps)
    return bodies


def state() -> list[tuple]:
    return list(Product.objects.order_by("id").values_list(
        "id", "sku", "name", "price", "created_at", "updated_at"))


def test_batches_with_bulk_upserts_equal_one_by_one_on_3x_shuffled_deliveries():
    bodies = history()
    for body in bodies:
        assert inbox_apply(event=event_parse(envelope=body)) == APPLIED
    expected = state()
    expected_versions = dict(AppliedVersion.objects.values_list("aggregate_id", "version"))
    assert len(expected) == 30 and dict((r[0], r[2]) for r in expected)[5] == "re-created"
    Product.objects.all().delete()
    AppliedVersion.objects.all().delete()
    InboxMessage.objects.all().delete()

    deliveries = bodies * 3
    random.Random(11).shuffle(deliveries)
    outcomes = []
    for start in range(0, len(deliveries), 40):
        with transaction.atomic():
            outcomes += inbox_apply_batch(events=[event_parse(envelope=b) for b in deliveries[start:start + 40]])
    assert outcomes.count(DUPLICATE) == 2 * len(bodies)
    assert outcomes.count(APPLIED) + outcomes.count(STALE) == len(bodies)
    assert state() == expected
    assert dict(AppliedVersion.objects.values_list("aggregate_id", "version")) == expected_versions


def test_a_batch_of_updates_is_one_upsert_statement_not_one_per_product():
    with transaction.atomic():
        inbox_apply_batch(events=[event_parse(envelope=envelope(events.PRODUCT_CREATED, p, 1)) for p in range(1, 51)])
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        inbox_apply_batch(events=[event_parse(envelope=envelope(events.PRODUCT_UPDATED, p, 2)) for p in range(1, 51)])
    product_writes = [q["sql"] for q in queries.captured_queries if "catalog_service_product" in q["sql"]]
    assert len(product_writes) == 1 and "ON CONFLICT" in product_writes[0]
    assert Product.objects.filter(name__endswith=" v2").count() == 50


def test_a_unique_clash_in_the_bulk_upsert_fails_the_batch_so_the_consumer_retries_one_by_one():
    with transaction.atomic():
        inbox_apply_batch(events=[event_parse(envelope=envelope(events.PRODUCT_CREATED, p, 1)) for p in (1, 2)])
    clash = [event_parse(envelope=envelope(events.PRODUCT_UPDATED, 3, 1, sku="SKU-1")),
             event_parse(envelope=envelope(events.PRODUCT_UPDATED, 2, 2, name="fine"))]
    with pytest.raises(IntegrityError), transaction.atomic():  # the whole batch rolls back
        inbox_apply_batch(events=clash)
    assert Product.objects.get(id=2).name == "P 2 v1"
    assert not InboxMessage.objects.filter(version=2).exists()


def test_the_bulk_upsert_writes_what_the_per_row_path_writes_for_awkward_values():
    awkward = {"name": "Ünïcode \"quoted\" \\ back'slash", "description": "line\nbreak", "price": "3.455",
               "images": ["/static/a.png", "https://example.com/b c.png"], "created_at": "2026-03-01T09:00:00",
               "updated_at": "2026-03-01T10:00:00.123456+02:00"}

    def values() -> list[tuple]:
        return list(Product.objects.order_by("id").values_list(
            "id", "sku", "slug", "name", "description", "price", "currency", "is_active", "images", "category_id",
            "created_at", "updated_at"))

    bodies = [envelope(events.PRODUCT_CREATED, p, 1, **awkward) for p in (1, 2)]
    for body in bodies:
        inbox_apply(event=event_parse(envelope=body))
    expected = values()
    Product.objects.all().delete()
    AppliedVersion.objects.all().delete()
    InboxMessage.objects.all().delete()
    with transaction.atomic():
        assert inbox_apply_batch(events=[event_parse(envelope=b) for b in bodies]) == [APPLIED, APPLIED]
    assert values() == expected
    assert expected[0][3] == awkward["name"] and str(expected[0][5]) in ("3.46", "3.45")
