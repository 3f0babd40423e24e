"""Reviews service models: the monolith's Review with its ids, and the product ids reviews may point at.

Differences from the monolith, and why:
- users live in the monolith: a review keeps the author's user id and username (from events, or from the
  monolith's /api/me/ when written here), not a foreign key;
- ``Product`` only records which ids exist and whether they are on sale (fed by product events);
- timestamps are plain fields (no auto_now): a follower stores the owner's values;
- foreign keys carry no database constraint: review and product events are ordered per aggregate only.
"""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

RATING_MIN, RATING_MAX = 1, 5


class Product(models.Model):
    id = models.BigIntegerField(primary_key=True)  # the owner's id, never allocated here
    is_active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"product {self.id}"


class Review(models.Model):
    id = models.BigAutoField(primary_key=True)
    product = models.ForeignKey(Product, on_delete=models.DO_NOTHING, related_name="reviews", db_constraint=False)
    user_id = models.BigIntegerField()  # the monolith's user id
    username = models.CharField(max_length=150)
    rating = models.PositiveSmallIntegerField(validators=[MinValueValidator(RATING_MIN), MaxValueValidator(RATING_MAX)])
    title = models.CharField(max_length=200, blank=True, default="")
    body = models.TextField(blank=True, default="")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["product", "-created_at"], name="reviews_svc_product_new_idx")]
        constraints = [
            models.UniqueConstraint(fields=["product", "user_id"], name="reviews_svc_one_per_user_per_product"),
            models.CheckConstraint(
                condition=models.Q(rating__gte=RATING_MIN, rating__lte=RATING_MAX), name="reviews_svc_rating_1_to_5"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rating}/5 on product {self.product_id} by user {self.user_id}"
