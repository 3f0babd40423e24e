"""Review reads: a product's reviews and its rating summary (the monolith's rules)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Avg, Count, QuerySet

from servicekit.errors import NotFound

from .models import Product, Review


def review_list(*, product_id: int | None = None) -> QuerySet[Review]:
    reviews = Review.objects.order_by("-created_at", "-id")
    if product_id is not None:
        reviews = reviews.filter(product_id=product_id)
    return reviews


def review_get(*, review_id: int) -> Review:
    try:
        return Review.objects.get(id=review_id)
    except Review.DoesNotExist:
        raise NotFound("Review not found.") from None


def product_get(*, product_id: int, active_only: bool = False) -> Product:
    products = Product.objects.filter(is_active=True) if active_only else Product.objects.all()
    try:
        return products.get(id=product_id)
    except Product.DoesNotExist:
        raise NotFound("Product not found.") from None


def product_rating_summary(*, product_id: int) -> tuple[Decimal | None, int]:
    """(average rating rounded to 2 places, or None without reviews; number of reviews)."""
    row = Review.objects.filter(product_id=product_id).aggregate(average=Avg("rating"), count=Count("id"))
    if not row["count"]:
        return None, 0
    average = Decimal(str(row["average"])).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return average, row["count"]
