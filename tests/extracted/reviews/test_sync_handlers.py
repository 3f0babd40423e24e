"""Sync handlers through the real inbox: reviews and product ids follow the owner; own events are skipped."""

from __future__ import annotations

import uuid

import pytest

from extracted import events
from extracted.reviews.ratings.models import Product, Review
from extracted.reviews.ratings.selectors import product_rating_summary
from strangler_sync.consumer import APPLIED, DUPLICATE, OWN, STALE, event_parse, inbox_apply
from strangler_sync.models import OutboxEvent
from tests.extracted.reviews.conftest import T0

pytestmark = pytest.mark.django_db


def envelope(event_type: str, aggregate_id: int, version: int, payload: dict, *, origin: str = "monolith") -> dict:
    return {
        "message_id": str(uuid.uuid4()), "event_type": event_type, "aggregate_type": event_type.split(".")[0],
        "aggregate_id": str(aggregate_id), "version": version, "schema_version": 1, "payload": payload,
        "occurred_at": T0.isoformat(), "origin": origin, "correlation_id": "",
    }  # fmt: skip


def review(review_id: int, version: int, rating: int, *, product_id: int = 5, origin: str = "monolith") -> dict:
    payload = {"id": review_id, "product_id": product_id, "user_id": review_id, "username": "carol", "rating": rating,
               "title": "T", "body": "B", "created_at": "2026-01-05T10:00:00+00:00",
               "updated_at": f"2026-01-0{5 + version}T10:00:00+00:00"}
    return envelope(events.REVIEW_UPDATED, review_id, version, payload, origin=origin)


def product(product_id: int, version: int, *, is_active: bool = True) -> dict:
    payload = {"id": product_id, "sku": f"S-{product_id}", "slug": f"s-{product_id}", "name": "P", "price": "1.00",
               "currency": "USD", "is_active": is_active, "category_id": None}
    return envelope(events.PRODUCT_UPDATED, product_id, version, payload)


def apply(body: dict) -> str:
    return inbox_apply(event=event_parse(envelope=body))


def test_reviews_follow_with_the_owner_timestamps_and_username():
    assert apply(product(5, 1)) == APPLIED
    assert apply(review(40, 1, 2)) == APPLIED
    assert apply(review(40, 2, 4)) == APPLIED
    stored = Review.objects.get(id=40)
    assert (stored.rating, stored.username, stored.user_id) == (4, "carol", 40)
    assert stored.created_at.isoformat() == "2026-01-05T10:00:00+00:00"
    assert stored.updated_at.isoformat() == "2026-01-07T10:00:00+00:00"
    assert product_rating_summary(product_id=5)[1] == 1
    assert not OutboxEvent.objects.exists()


def test_duplicates_stale_and_own_events_change_nothing():
    newest = review(41, 3, 5)
    assert apply(newest) == APPLIED
    assert apply(newest) == DUPLICATE
    assert apply(review(41, 2, 1)) == STALE
    assert apply(review(41, 4, 1, origin="reviews")) == OWN
    assert Review.objects.get(id=41).rating == 5


def test_deletes_of_reviews_and_of_products():
    apply(product(6, 1))
    apply(review(50, 1, 3, product_id=6))
    apply(review(51, 1, 4, product_id=6))
    assert apply(envelope(events.REVIEW_DELETED, 50, 2, {"id": 50})) == APPLIED
    assert list(Review.objects.values_list("id", flat=True)) == [51]
    assert apply(envelope(events.PRODUCT_DELETED, 6, 2, {"id": 6})) == APPLIED
    assert not Review.objects.exists() and not Product.objects.filter(id=6).exists()


def test_the_review_payload_schema_is_checked_on_receipt():
    from strangler_sync.errors import SchemaError

    body = review(60, 1, 3)
    body["payload"]["username"] = 42  # a producer bug: the wrong type never reaches the handler
    with pytest.raises(SchemaError) as caught:
        event_parse(envelope=body)
    assert caught.value.details == {"username": "expected str"}
    assert not Review.objects.filter(id=60).exists()
