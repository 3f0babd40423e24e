"""Review reads: a product's reviews and its rating summary."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Avg, Count, QuerySet

from monolith.reviews.models import Review
from servicekit.errors import NotFound


def review_list(*, product_id: int | None = None) -> QuerySet[Review]:
    reviews = Review.objects.select_related("user").order_by("-created_at", "-id")
    if product_id is not None:
        reviews = reviews.filter(product_id=product_id)
    return reviews


def review_list_for_product(*, product_id: int) -> QuerySet[Review]:
    """Newest first."""
    return review_list(product_id=product_id)


def review_get(*, review_id: int) -> Review:
    try:
        return Review.objects.select_related("user", "product").get(id=review_id)
    except Review.DoesNotExist:
        raise NotFound("Review not found.") from None


def review_get_for_user(*, product_id: int, user) -> Review | None:
    if not getattr(user, "is_authenticated", False):
        return None
    return Review.objects.filter(product_id=product_id, user=user).first()


def product_rating_summary(*, product_id: int) -> tuple[Decimal | None, int]:
    """(average rating rounded to 2 places, or None without reviews; number of reviews)."""
    row = Review.objects.filter(product_id=product_id).aggregate(average=Avg("rating"), count=Count("id"))
    if not row["count"]:
        return None, 0
    average = Decimal(str(row["average"])).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return average, row["count"]
