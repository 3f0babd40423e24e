"""Review writes.

Two write paths, never mixed:
- ``*_apply_synced``/``*_discard_synced``: the follower path, used by the sync handlers. They store the
  owner's state with the owner's ids and timestamps and emit nothing (no echo).
- ``review_create``/``review_update``/``review_delete``: the owner path, used by the API once this service
  owns "review" (``ownership_require_owner`` refuses with 409 ``not_owner`` before that), with the
  monolith's rules and messages. Each write is one transaction holding the row change and its outbox event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from extracted import events
from servicekit.errors import Conflict, InvalidInput
from strangler_sync.ownership import ownership_require_owner
from strangler_sync.services import event_publish
from strangler_sync.snapshots import aggregate_payload, canonical_value

from .models import RATING_MAX, RATING_MIN, Product, Review

REVIEW = "review"
REVIEW_FIELDS = ("rating", "title", "body")


def review_payload(review: Review) -> dict:
    """The event payload (STRANGLER_SYNC SNAPSHOT): the monolith's keys, so either side can follow the other."""
    return {
        "id": review.id, "product_id": review.product_id, "user_id": review.user_id, "username": review.username,
        "rating": review.rating, "title": review.title, "body": review.body,
        "created_at": canonical_value(review.created_at), "updated_at": canonical_value(review.updated_at),
    }  # fmt: skip


def _clean(data: dict[str, Any]) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    if "rating" in data:
        rating = data["rating"]
        if isinstance(rating, bool) or not isinstance(rating, int) or not RATING_MIN <= rating <= RATING_MAX:
            raise InvalidInput(
                f"Rating must be a whole number from {RATING_MIN} to {RATING_MAX}.",
                details={"rating": [f"Must be an integer between {RATING_MIN} and {RATING_MAX}."]},
            )
        cleaned["rating"] = rating
    if "title" in data:
        title = data["title"] or ""
        if not isinstance(title, str) or len(title) > 200:
            raise InvalidInput("Title is too long.", details={"title": ["At most 200 characters."]})
        cleaned["title"] = title.strip()
    if "body" in data:
        body = data["body"] or ""
        if not isinstance(body, str) or len(body) > 10_000:
            raise InvalidInput("Review text is too long.", details={"body": ["At most 10000 characters."]})
        cleaned["body"] = body.strip()
    return cleaned


def _publish(*, event_type: str, review: Review) -> None:
    event_publish(event_type=event_type, aggregate_type=REVIEW, aggregate_id=review.id,
                  payload=aggregate_payload(aggregate_type=REVIEW, instance=review))


# -- owner path ------------------------------------------------------------------------------------------------------


def review_create(*, product: Product, user, rating: int, title: str = "", body: str = "") -> Review:
    ownership_require_owner(aggregate_type=REVIEW)
    if not product.is_active:
        # a well-formed request the product's state refuses (the schema cannot know what is on sale)
        raise Conflict("This product is not on sale and cannot be reviewed.", details={"product": [product.id]})
    fields = _clean({"rating": rating, "title": title, "body": body})
    duplicate = Conflict(
        "You have already reviewed this product; edit your review instead.",
        details={"product": [product.id]},
    )
    if Review.objects.filter(product=product, user_id=user.id).exists():
        raise duplicate
    now = timezone.now()
    review = Review(product=product, user_id=user.id, username=user.get_username(), created_at=now, updated_at=now,
                    **fields)
    try:
        with transaction.atomic():
            review.save()
            _publish(event_type=events.REVIEW_CREATED, review=review)
    except IntegrityError as exc:  # a concurrent request created the user's review after the check
        raise duplicate from exc
    return review


def review_update(*, review: Review, data: dict[str, Any]) -> Review:
    ownership_require_owner(aggregate_type=REVIEW)
    unknown = set(data) - set(REVIEW_FIELDS)
    if unknown:
        raise InvalidInput("Unknown fields.", details={f: ["Not an updatable field."] for f in sorted(unknown)})
    changes = _clean(data)
    with transaction.atomic():
        review = Review.objects.select_for_update().get(id=review.id)
        for field, value in changes.items():
            setattr(review, field, value)
        review.updated_at = timezone.now()
        review.save()
        _publish(event_type=events.REVIEW_UPDATED, review=review)
    return review


def review_delete(*, review: Review) -> Review:
    ownership_require_owner(aggregate_type=REVIEW)
    review_id = review.id
    with transaction.atomic():
        list(Review.objects.select_for_update().filter(id=review_id).values_list("id"))  # serialise with updates
        review.delete()
        event_publish(event_type=events.REVIEW_DELETED, aggregate_type=REVIEW, aggregate_id=review_id,
                      payload={"id": review_id})
    review.id = review_id
    return review


# -- follower path: apply the owner's state --------------------------------------------------------------------------


def _timestamp(value: Any, *, fallback: datetime) -> datetime:
    parsed = parse_datetime(value) if isinstance(value, str) and value else None
    return parsed or fallback


def review_apply_synced(*, review_id: int, data: dict[str, Any], occurred_at: datetime) -> Review:
    """Make the review with this id equal to the owner's state (insert or update)."""
    with transaction.atomic():
        existing = Review.objects.select_for_update().filter(id=review_id).first()
        review = existing or Review(id=review_id)
        review.product_id = data["product_id"]
        review.user_id = data.get("user_id") or 0
        review.username = data.get("username") or ""
        review.rating = data["rating"]
        review.title = data.get("title") or ""
        review.body = data.get("body") or ""
        created_fallback = existing.created_at if existing else occurred_at
        review.created_at = _timestamp(data.get("created_at"), fallback=created_fallback)
        review.updated_at = _timestamp(data.get("updated_at"), fallback=occurred_at)
        review.save(force_insert=existing is None)
    return review


def review_discard_synced(*, review_id: int) -> None:
    with transaction.atomic():
        Review.objects.filter(id=review_id).delete()


def product_apply_synced(*, product_id: int, data: dict[str, Any]) -> Product:
    product, _ = Product.objects.update_or_create(id=product_id, defaults={"is_active": bool(data["is_active"])})
    return product


def product_discard_synced(*, product_id: int) -> None:
    """The product is gone and its reviews with it (CASCADE on the owner)."""
    with transaction.atomic():
        Review.objects.filter(product_id=product_id).delete()
        Product.objects.filter(id=product_id).delete()
