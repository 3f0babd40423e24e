"""Orders reads: a customer's order history and one order (staff see every order)."""

from __future__ import annotations

from django.db.models import QuerySet

from monolith.orders.models import Order
from servicekit.errors import NotFound


def order_list(*, user) -> QuerySet[Order]:
    return Order.objects.filter(user=user).prefetch_related("lines").order_by("-placed_at", "-id")


def order_get(*, user, reference: str) -> Order:
    """The order with that reference if the user may see it (owner or staff); NotFound otherwise."""
    orders = Order.objects.prefetch_related("lines", "payments")
    if not user.is_staff:
        orders = orders.filter(user=user)
    order = orders.filter(reference=reference).first()
    if order is None:
        raise NotFound(f"No order {reference}.", details={"order": reference})
    return order
