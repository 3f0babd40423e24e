"""Sync handlers through the real inbox: apply, idempotent redelivery, stale versions, deletes, any arrival order."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from extracted import events
from extracted.catalog import sync_handlers
from extracted.catalog.products.models import Category, Product
from strangler_sync.consumer import APPLIED, DUPLICATE, STALE, event_parse, inbox_apply
from strangler_sync.models import OutboxEvent

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def envelope(event_type: str, aggregate_id: int, version: int, payload: dict, *, minutes: int = 0) -> dict:
    return {
        "message_id": str(uuid.uuid4()),
        "event_type": event_type,
        "aggregate_type": event_type.split(".")[0],
        "aggregate_id": str(aggregate_id),
        "version": version,
        "schema_version": 1,
        "payload": payload,
        "occurred_at": (T0 + timedelta(minutes=minutes)).isoformat(),
        "origin": "monolith",
        "correlation_id": "req-123",
    }


def product_payload(product_id: int, **changes) -> dict:
    return {
        "id": product_id, "sku": f"SKU-{product_id}", "slug": f"p-{product_id}", "name": f"Product {product_id}",
        "description": "", "price": "10.00", "currency": "USD", "is_active": True, "category_id": None,
        "images": [], **changes,
    }  # fmt: skip


def category_payload(category_id: int, **changes) -> dict:
    return {"id": category_id, "name": f"Cat {category_id}", "slug": f"c-{category_id}", "parent_id": None,
            "description": "", **changes}  # fmt: skip


def apply(body: dict) -> str:
    return inbox_apply(event=event_parse(envelope=body))


def test_created_then_updated_applies_the_owner_state_with_its_id():
    assert apply(envelope(events.CATEGORY_CREATED, 7, 1, category_payload(7))) == APPLIED
    assert apply(envelope(events.PRODUCT_CREATED, 42, 1, product_payload(42, category_id=7))) == APPLIED
    assert apply(envelope(events.PRODUCT_UPDATED, 42, 2, product_payload(42, price="12.34", category_id=7,
                                                                         images=["https://x/1.png"]), minutes=5))
    product = Product.objects.select_related("category").get(id=42)
    assert (product.sku, str(product.price), product.category.slug, product.images) == (
        "SKU-42", "12.34", "c-7", ["https://x/1.png"]
    )
    assert product.created_at == T0  # first seen at the created event
    assert product.updated_at == T0 + timedelta(minutes=5)


def test_owner_timestamps_in_the_payload_win_over_occurred_at():
    payload = product_payload(1, created_at="2025-05-05T10:00:00+00:00", updated_at="2025-06-06T10:00:00+00:00")
    apply(envelope(events.PRODUCT_SNAPSHOT, 1, 3, payload))
    product = Product.objects.get(id=1)
    assert product.created_at == datetime(2025, 5, 5, 10, tzinfo=UTC)
    assert product.updated_at == datetime(2025, 6, 6, 10, tzinfo=UTC)


def test_redelivery_is_skipped_and_stale_versions_never_overwrite():
    first = envelope(events.PRODUCT_CREATED, 5, 1, product_payload(5, name="v1"))
    newer = envelope(events.PRODUCT_UPDATED, 5, 3, product_payload(5, name="v3"))
    older = envelope(events.PRODUCT_UPDATED, 5, 2, product_payload(5, name="v2"))
    assert apply(first) == APPLIED
    assert apply(first) == DUPLICATE
    assert apply(newer) == APPLIED
    assert apply(older) == STALE
    assert apply(newer) == DUPLICATE
    assert Product.objects.get(id=5).name == "v3"


def test_delete_is_idempotent_and_a_late_update_does_not_resurrect():
    apply(envelope(events.PRODUCT_CREATED, 9, 1, product_payload(9)))
    assert apply(envelope(events.PRODUCT_DELETED, 9, 3, {"id": 9})) == APPLIED
    assert apply(envelope(events.PRODUCT_DELETED, 9, 3, {"id": 9})) == STALE  # a re-emitted delete
    assert apply(envelope(events.PRODUCT_UPDATED, 9, 2, product_payload(9))) == STALE
    assert not Product.objects.filter(id=9).exists()


def test_a_product_may_arrive_before_its_category():
    apply(envelope(events.PRODUCT_CREATED, 1, 1, product_payload(1, category_id=70)))
    assert Product.objects.get(id=1).category_id == 70  # no FK constraint on the follower
    apply(envelope(events.CATEGORY_CREATED, 70, 1, category_payload(70, name="Late")))
    assert Product.objects.select_related("category").get(id=1).category.name == "Late"


def test_category_delete_detaches_products_like_the_owner():
    apply(envelope(events.CATEGORY_CREATED, 3, 1, category_payload(3)))
    apply(envelope(events.PRODUCT_CREATED, 1, 1, product_payload(1, category_id=3)))
    apply(envelope(events.CATEGORY_DELETED, 3, 2, {"id": 3}))
    assert not Category.objects.filter(id=3).exists()
    assert Product.objects.get(id=1).category_id is None


def test_applying_synced_events_never_emits_events_even_when_this_service_owns(catalog_owned):
    apply(envelope(events.CATEGORY_CREATED, 3, 1, category_payload(3)))
    apply(envelope(events.PRODUCT_CREATED, 1, 1, product_payload(1, category_id=3)))
    apply(envelope(events.PRODUCT_DELETED, 1, 2, {"id": 1}))
    assert not OutboxEvent.objects.exists()


def test_every_event_delivered_three_times_shuffled_converges_to_the_last_version():
    stream = []
    for product_id in range(1, 6):
        stream.append(envelope(events.PRODUCT_CREATED, product_id, 1, product_payload(product_id)))
        for version in range(2, 5):
            stream.append(envelope(events.PRODUCT_UPDATED, product_id, version,
                                   product_payload(product_id, price=f"{version}.00", name=f"v{version}")))
    stream.append(envelope(events.PRODUCT_DELETED, 5, 5, {"id": 5}))
    deliveries = stream * 3
    random.Random(7).shuffle(deliveries)
    outcomes = [apply(body) for body in deliveries]
    assert outcomes.count(DUPLICATE) == 2 * len(stream)
    assert {(p.id, p.name, str(p.price)) for p in Product.objects.all()} == {
        (i, "v4", "4.00") for i in range(1, 5)
    }


def test_after_the_flip_versions_continue_from_the_previous_owner(catalog_owned, staff_api):
    """A rollback to the monolith must not find its next versions stale: this owner numbers after v3."""
    from extracted.catalog.products.bootstrap import id_sequences_advance

    apply(envelope(events.PRODUCT_SNAPSHOT, 8, 3, product_payload(8)))
    id_sequences_advance()
    assert staff_api.patch("/api/products/8/", {"price": "20.00"}, format="json").status_code == 200
    assert staff_api.delete("/api/products/8/").status_code == 204
    created = staff_api.post("/api/products/", {"sku": "FRESH-1", "name": "Fresh", "price": "1.00"}, format="json")
    versions = list(OutboxEvent.objects.order_by("id").values_list("aggregate_id", "event_type", "version"))
    assert versions == [
        ("8", "product.updated", 4), ("8", "product.deleted", 5), (str(created.json()["id"]), "product.created", 1)
    ]


def test_own_events_coming_back_are_not_applied(catalog_owned):
    """After the flip this service also receives what it emitted; a late one must not roll the row back."""
    apply(envelope(events.PRODUCT_CREATED, 1, 1, product_payload(1, name="current")))
    echo = envelope(events.PRODUCT_UPDATED, 1, 2, product_payload(1, name="older state"))
    echo["origin"] = "catalog"
    apply(echo)  # the consumer may skip it itself ("own"); the handler also refuses to apply it
    assert Product.objects.get(id=1).name == "current"
    deleted = envelope(events.PRODUCT_DELETED, 1, 3, {"id": 1})
    deleted["origin"] = "catalog"
    apply(deleted)
    assert Product.objects.filter(id=1).exists()
    # the handlers themselves, whatever the consumer decides
    sync_handlers.product_upsert(event=event_parse(envelope=echo))
    sync_handlers.product_delete(event=event_parse(envelope=deleted))
    assert Product.objects.get(id=1).name == "current"
