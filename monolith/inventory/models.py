"""Inventory models: on-hand and reserved quantities per product, and reservations per order.

available = on_hand - reserved, never negative (checked by constraints and by row locks taken in
ascending product id order inside inventory.services).
"""

from __future__ import annotations

from django.db import models


class StockItem(models.Model):
    product = models.OneToOneField("catalog.Product", on_delete=models.CASCADE, related_name="stock")
    quantity_on_hand = models.PositiveIntegerField(default=0)
    quantity_reserved = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(quantity_reserved__lte=models.F("quantity_on_hand")),
                name="stock_reserved_within_on_hand",
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
        RELEASED = "released", "Released"  # given back (cancel, payment failure, timeout)
        RETURNED = "returned", "Returned"  # was confirmed, came back to the shelf (paid order cancelled)

    reference = models.CharField(max_length=64, db_index=True)  # the order's reference
    product = models.ForeignKey("catalog.Product", on_delete=models.PROTECT, related_name="reservations")
    quantity = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["reference", "product"], name="reservation_unique_per_reference_product"),
            models.CheckConstraint(condition=models.Q(quantity__gt=0), name="reservation_quantity_positive"),
        ]

    def __str__(self) -> str:
        return f"reservation {self.reference}: {self.quantity} x product {self.product_id} ({self.status})"
