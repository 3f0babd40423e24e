"""Inventory service models: the monolith's StockItem and Reservation, keyed by the monolith's product ids.

Differences from the monolith, and why:
- products live in the catalog; ``Product`` here only records which ids exist (fed by product events),
  so a product without stock reads as zeros and an unknown one is 404, as in the monolith;
- foreign keys carry no database constraint: stock and product events are ordered per aggregate only,
  so a product's stock may arrive before the product itself.
"""

from __future__ import annotations

from django.db import models


class Product(models.Model):
    id = models.BigIntegerField(primary_key=True)  # the owner's id, never allocated here
    is_active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"product {self.id}"


class StockItem(models.Model):
    product = models.OneToOneField(
        Product, on_delete=models.DO_NOTHING, related_name="stock", db_constraint=False
    )
    quantity_on_hand = models.PositiveIntegerField(default=0)
    quantity_reserved = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(quantity_reserved__lte=models.F("quantity_on_hand")),
                name="inventory_service_reserved_within_on_hand",
            ),
        ]

    def __str__(self) -> str:
        return f"stock of product {self.product_id}: {self.quantity_available} available"

    @property
    def quantity_available(self) -> int:
        return self.quantity_on_hand - self.quantity_reserved


class Reservation(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        CONFIRMED = "confirmed", "Confirmed"  # stock left the warehouse with the order
        RELEASED = "released", "Released"  # given back (cancel, payment failure, timeout, expiry)
        RETURNED = "returned", "Returned"  # was confirmed, came back to the shelf (paid order cancelled)

    reference = models.CharField(max_length=64, db_index=True)  # the order's reference
    product = models.ForeignKey(
        Product, on_delete=models.DO_NOTHING, related_name="reservations", db_constraint=False
    )
    quantity = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["status", "created_at"], name="inv_reservation_expiry_idx")]
        constraints = [
            models.UniqueConstraint(fields=["reference", "product"], name="inv_reservation_unique_ref_product"),
            models.CheckConstraint(condition=models.Q(quantity__gt=0), name="inv_reservation_quantity_positive"),
        ]

    def __str__(self) -> str:
        return f"reservation {self.reference}: {self.quantity} x product {self.product_id} ({self.status})"
