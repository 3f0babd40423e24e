"""Checkout as a saga when stock lives in the inventory service: reserve -> pay -> confirm, with compensations.

While the monolith owns "stock" (strangler_sync ownership), checkout reserves in its own database inside
the order's transaction, as it always did. Once the owner is the inventory service, each step is a call
to its API (``inventory_gateway``), made outside any database transaction, and each failure is undone:

- reserve fails (out of stock, service down/slow, breaker open): the order is discarded (it never had a
  payment), after undoing a reservation that may have been made when the call timed out;
- payment fails: the order is cancelled and the reservation released (refunded when the charge's
  outcome is unknown) -- as locally;
- confirm fails or times out after the charge: the reservation is undone with ``return`` (whatever the
  confirm did), the order cancelled with ``inventory_unavailable`` and the charge refunded.

Every step is idempotent by the order reference, so retries are safe. A compensation that cannot reach
the service leaves an active reservation behind; the service's ``inventory_expire_reservations`` (cron)
releases it. Where a reservation lives is decided per order: local Reservation rows mean the monolith
made it (before the flip), none mean the service did.
"""

from __future__ import annotations

import logging

from django.db import transaction

from monolith.inventory.models import Reservation
from monolith.orders.inventory_gateway import InventoryUnavailable, inventory_reserve, inventory_return
from monolith.orders.models import Order, OrderLine
from strangler_sync.ownership import ownership_is_owner

logger = logging.getLogger(__name__)

STOCK = "stock"


def stock_is_remote() -> bool:
    """True once another project (the inventory service) owns stock writes."""
    return not ownership_is_owner(aggregate_type=STOCK)


def reservation_is_local(*, reference: str) -> bool:
    return Reservation.objects.filter(reference=reference).exists()


def reservation_undo_quietly(*, reference: str) -> bool:
    """Compensation: undo the service's reservation; False (logged) when the service cannot be reached."""
    try:
        inventory_return(reference=reference)
    except InventoryUnavailable as exc:
        logger.warning("could not undo reservation %s (the service's expiry will release it): %s",
                       reference, exc.message, extra={"reference": reference})
        return False
    return True


def _order_discard(*, order: Order) -> None:
    """Remove an order that never got its stock (no payment was attempted): nothing of it stays behind."""
    with transaction.atomic():
        OrderLine.objects.filter(order_id=order.pk).delete()
        Order.objects.filter(pk=order.pk, status=Order.Status.PLACED, payments__isnull=True).delete()


def checkout_reserve_remote(*, order: Order, lines: list[tuple[int, int]]) -> None:
    """Saga step 1: reserve in the inventory service, or discard the order and raise what went wrong."""
    try:
        inventory_reserve(reference=order.reference, lines=lines)
    except InventoryUnavailable:
        # A timeout leaves the outcome unknown: the reservation may exist, so undo it before forgetting the order.
        if order.reference and not reservation_undo_quietly(reference=order.reference):
            logger.warning("checkout %s: reservation state unknown", order.reference)
        _order_discard(order=order)
        raise
    except Exception:
        _order_discard(order=order)
        raise
