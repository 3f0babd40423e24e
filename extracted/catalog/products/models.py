"""Catalog service models: the monolith's Category and Product fields, with the monolith's ids.

Differences from the monolith, and why:
- timestamps are plain fields (no auto_now): a follower stores the owner's values, and the
  service's own write services set them explicitly;
- foreign keys carry no database constraint: events of different aggregates (a product and its
  category) are ordered per aggregate only, so a product may arrive before its category. Django
  still applies on_delete (SET_NULL / PROTECT) when rows are deleted through the ORM, as the
  monolith does.
"""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models


class Category(models.Model):
    id = models.BigAutoField(primary_key=True)
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=140, unique=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children", db_constraint=False
    )
    description = models.TextField(blank=True, default="")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    id = models.BigAutoField(primary_key=True)
    sku = models.CharField(max_length=64, unique=True)
    slug = models.SlugField(max_length=200, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    price = models.DecimalField(max_digits=12, decimal_places=2, validators=[MinValueValidator(Decimal("0.00"))])
    currency = models.CharField(max_length=3, default="USD")
    is_active = models.BooleanField(default=True, db_index=True)
    images = models.JSONField(default=list, blank=True)  # list of image URLs
    category = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.SET_NULL, related_name="products", db_constraint=False
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["name", "id"]
        # the monolith's indexes: same queries, same plans
        indexes = [
            models.Index(fields=["category", "is_active"]),
            models.Index(fields=["price"]),
            models.Index(fields=["created_at"]),  # ordering=newest
            models.Index(fields=["name", "id"]),  # the default ordering: page 1 without sorting the whole table
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(price__gte=0), name="catalog_service_price_non_negative")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.sku})"
