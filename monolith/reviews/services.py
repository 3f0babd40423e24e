"""Review writes: one review per user per product, rating 1-5. Each write is one transaction and returns the review.

Each write also records its ``review.*`` event (full state) in the outbox in the same transaction, so the
reviews service can follow. Once ownership of "review" moves to the reviews service, these writes refuse
with 409 ``not_owner`` and the monolith follows the service's events instead (``sync_handlers``), which
keeps the product page's rating summary right.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from monolith import events
from monolith.catalog.models import Product
from monolith.reviews.models import RATING_MAX, RATING_MIN, Review
from servicekit.errors import Conflict, InvalidInput
from strangler_sync.ownership import ownership_require_owner
from strangler_sync.services import event_publish
from strangler_sync.snapshots import aggregate_payload

REVIEW_FIELDS = ("rating", "title", "body")
REVIEW = "review"  # the sync plane's aggregate name


def _publish(*, event_type: str, review: Review) -> None:
    event_publish(event_type=event_type, aggregate_type=REVIEW, aggregate_id=review.id,
                  payload=aggregate_payload(aggregate_type=REVIEW, instance=review))


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
    if Review.objects.filter(product=product, user=user).exists():
        raise duplicate
    review = Review(product=product, user=user, **fields)
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
        review.save()
        _publish(event_type=events.REVIEW_UPDATED, review=review)
    return review


def review_delete(*, review: Review) -> Review:
    ownership_require_owner(aggregate_type=REVIEW)
    review_id = review.id
    with transaction.atomic():
        review.delete()
        event_publish(event_type=events.REVIEW_DELETED, aggregate_type=REVIEW, aggregate_id=review_id,
                      payload={"id": review_id})
    review.id = review_id
    return review
