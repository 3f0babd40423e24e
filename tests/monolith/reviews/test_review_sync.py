"""Reviews on the data plane: each write emits its full state; after the flip the monolith follows the reviews
service, and the product page's average rating stays right."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from monolith import events
from monolith.reviews import services
from monolith.reviews.models import Review
from monolith.reviews.selectors import product_rating_summary
from strangler_sync.consumer import APPLIED, event_parse, inbox_apply
from strangler_sync.errors import NotOwner
from strangler_sync.models import OutboxEvent
from strangler_sync.ownership import ownership_set

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 6, 1, 8, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def private_ownership(settings, tmp_path):
    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "OWNERSHIP_FILE": str(tmp_path / "ownership.json"),
                               "RELAY_TRIGGER": "none"}


def test_writes_emit_the_full_review_with_username_and_timestamps(product, alice):
    review = services.review_create(product=product, user=alice, rating=4, title="Nice", body="Pours well")
    created_at = Review.objects.get(id=review.id).created_at
    services.review_update(review=review, data={"rating": 5})
    services.review_delete(review=review)
    rows = list(OutboxEvent.objects.filter(aggregate_type="review").order_by("version"))
    assert [(e.event_type, e.version) for e in rows] == [
        (events.REVIEW_CREATED, 1), (events.REVIEW_UPDATED, 2), (events.REVIEW_DELETED, 3)]
    created = rows[0].payload
    assert {k: created[k] for k in ("id", "product_id", "user_id", "username", "rating", "title", "body")} == {
        "id": review.id, "product_id": product.id, "user_id": alice.id, "username": "alice", "rating": 4,
        "title": "Nice", "body": "Pours well"}
    assert datetime.fromisoformat(created["created_at"]) == created_at
    assert rows[1].payload["rating"] == 5 and rows[2].payload == {"id": review.id}


def _envelope(event_type: str, review_id: int, version: int, payload: dict) -> dict:
    return {"message_id": str(uuid.uuid4()), "event_type": event_type, "aggregate_type": "review",
            "aggregate_id": str(review_id), "version": version, "schema_version": 1, "payload": payload,
            "occurred_at": T0.isoformat(), "origin": "reviews", "correlation_id": ""}


def test_after_the_flip_the_monolith_follows_and_the_product_page_rating_stays_right(client, product, alice, bob):
    services.review_create(product=product, user=alice, rating=2)
    ownership_set(aggregate_type="review", owner="reviews")
    with pytest.raises(NotOwner):
        services.review_create(product=product, user=bob, rating=5)
    payload = {"id": 9001, "product_id": product.id, "user_id": bob.id, "username": "bob", "rating": 5,
               "title": "Great", "body": "", "created_at": T0.isoformat(), "updated_at": T0.isoformat()}
    assert inbox_apply(event=event_parse(envelope=_envelope(events.REVIEW_CREATED, 9001, 1, payload))) == APPLIED
    assert product_rating_summary(product_id=product.id) == (pytest.approx(3.5), 2)
    page = client.get(reverse("catalog:product-detail", kwargs={"slug": product.slug}))
    assert "★ 3.50" in page.content.decode() and "from 2 reviews" in page.content.decode()
    assert Review.objects.get(id=9001).created_at == T0  # the owner's timestamp, not the time it arrived
    update = {**payload, "rating": 3, "updated_at": "2026-06-02T08:30:00+00:00"}
    inbox_apply(event=event_parse(envelope=_envelope(events.REVIEW_UPDATED, 9001, 2, update)))
    assert str(product_rating_summary(product_id=product.id)[0]) == "2.50"
    inbox_apply(event=event_parse(envelope=_envelope(events.REVIEW_DELETED, 9001, 3, {"id": 9001})))
    assert str(product_rating_summary(product_id=product.id)[0]) == "2.00"
    assert api_rating(client, product.id) == {"product": product.id, "average": "2.00", "count": 1}
    assert not OutboxEvent.objects.filter(origin="monolith", aggregate_id="9001").exists()  # no echo


def api_rating(client, product_id: int) -> dict:
    return client.get(f"/api/products/{product_id}/rating/").json()
