"""Inventory writes.

Two write paths, never mixed:
- ``*_apply_synced``/``*_discard_synced``: the follower path, used by the sync handlers. They store the
  owner's state (stock levels, which products exist) and emit nothing (no echo).
- ``stock_*``: the owner path, used by the API once this service owns "stock" (``ownership_require_owner``
  refuses with 409 ``not_owner`` before that). The rules are the monolith's: every write is one
  transaction that locks StockItem rows in ascending product id order, touches reservations, and writes a
  ``stock.changed`` event per changed row (full state) to the outbox in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from extracted import events
from servicekit.errors import Conflict, InvalidInput, NotFound
from servicekit.ids import MAX_ID
from strangler_sync.ownership import ownership_require_owner
from strangler_sync.services import event_publish
from strangler_sync.snapshots import aggregate_payload

from .errors import OutOfStock
from .models import Product, Reservation, StockItem

STOCK = "stock"
MAX_QUANTITY = 2_147_483_647  # PositiveIntegerField upper bound on every backend


# -- validation (the monolith's rules and messages) ------------------------------------------------------------------


def _clean_quantity(value, *, field: str, minimum: int, maximum: int = MAX_QUANTITY) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field} must be an integer.", details={field: ["A valid integer is required."]})
    if value < minimum or value > maximum:
        message = f"Must be between {minimum} and {maximum}."
        raise InvalidInput(f"{field} is out of range.", details={field: [message]})
    return value


def _clean_reference(reference) -> str:
    if not isinstance(reference, str) or not reference.strip() or len(reference) > 64:
        raise InvalidInput("reference must be 1-64 characters.", details={"reference": ["1-64 characters."]})
    return reference.strip()


def _clean_lines(lines) -> dict[int, int]:
    """[(product_id, quantity), ...] -> {product_id: total quantity}, rejecting junk."""
    if not isinstance(lines, list | tuple) or not lines:
        raise InvalidInput("At least one line is required.", details={"lines": ["At least one line is required."]})
    wanted: dict[int, int] = {}
    for line in lines:
        try:
            product_id, quantity = line
        except (TypeError, ValueError):
            raise InvalidInput("Each line is (product_id, quantity).", details={"lines": ["Malformed line."]}) from None
        # any id (servicekit.ids), as the serializer says: one past the stock column's range names no product
        product_id = _clean_quantity(product_id, field="product", minimum=1, maximum=MAX_ID)
        wanted[product_id] = wanted.get(product_id, 0) + _clean_quantity(quantity, field="quantity", minimum=1)
    return wanted


# -- owner path ------------------------------------------------------------------------------------------------------


def _stock_changed(item: StockItem) -> None:
    event_publish(
        event_type=events.STOCK_CHANGED,
        aggregate_type=STOCK,
        aggregate_id=item.product_id,
        payload=aggregate_payload(aggregate_type=STOCK, instance=item),
    )


def _locked_stock(product_ids: Iterable[int], *, create: bool = False) -> dict[int, StockItem]:
    """Lock the stock rows of these products, ascending product id; with create, make missing rows first."""
    ids = sorted(set(product_ids))
    if create:
        known = set(Product.objects.filter(id__in=ids).values_list("id", flat=True))
        missing = [pid for pid in ids if pid not in known]
        if missing:
            raise NotFound(f"Unknown product {missing[0]}.", details={"products": missing})
        for pid in ids:
            StockItem.objects.get_or_create(product_id=pid)
    rows = StockItem.objects.select_for_update().filter(product_id__in=ids).order_by("product_id")
    return {row.product_id: row for row in rows}


def stock_set(*, product_id: int, quantity_on_hand: int) -> StockItem:
    """Set the counted on-hand quantity; it may not drop below what is already reserved."""
    ownership_require_owner(aggregate_type=STOCK)
    quantity_on_hand = _clean_quantity(quantity_on_hand, field="quantity_on_hand", minimum=0)
    with transaction.atomic():
        item = _locked_stock([product_id], create=True)[product_id]
        if quantity_on_hand < item.quantity_reserved:
            raise Conflict(
                f"Product {product_id} has {item.quantity_reserved} reserved; on hand cannot be {quantity_on_hand}.",
                details={"product": product_id, "quantity_reserved": item.quantity_reserved},
            )
        item.quantity_on_hand = quantity_on_hand
        item.save(update_fields=["quantity_on_hand", "updated_at"])
        _stock_changed(item)
    return item


def stock_reserve(*, reference: str, lines: list[tuple[int, int]]) -> list[Reservation]:
    """Reserve every line or none (OutOfStock names each short product). Idempotent per reference."""
    ownership_require_owner(aggregate_type=STOCK)
    reference = _clean_reference(reference)
    wanted = _clean_lines(lines)
    with transaction.atomic():
        stock = _locked_stock(wanted)
        # Checked after taking the locks: a concurrent call with the same reference has committed by now.
        existing = list(Reservation.objects.filter(reference=reference).order_by("product_id"))
        if existing:
            return existing
        shortages = []
        for product_id, quantity in sorted(wanted.items()):
            item = stock.get(product_id)
            available = item.quantity_available if item else 0
            if quantity > available:
                shortages.append({"product": product_id, "requested": quantity, "available": available})
        if shortages:
            names = ", ".join(str(s["product"]) for s in shortages)
            raise OutOfStock(f"Not enough stock for product(s) {names}.", details={"products": shortages})
        for product_id, quantity in sorted(wanted.items()):
            item = stock[product_id]
            item.quantity_reserved += quantity
            item.save(update_fields=["quantity_reserved", "updated_at"])
            _stock_changed(item)
        reservations = Reservation.objects.bulk_create(
            Reservation(reference=reference, product_id=product_id, quantity=quantity)
            for product_id, quantity in sorted(wanted.items())
        )
    return reservations


def _reservations_locked(reference: str) -> tuple[list[Reservation], dict[int, StockItem]]:
    """Lock stock rows (ascending product id) and then the reference's reservations."""
    product_ids = Reservation.objects.filter(reference=reference).values_list("product_id", flat=True)
    stock = _locked_stock(product_ids)
    reservations = list(Reservation.objects.select_for_update().filter(reference=reference).order_by("product_id"))
    if not reservations:
        raise NotFound(f"No reservation {reference!r}.", details={"reference": reference})
    return reservations, stock


def _release_active(reservations: list[Reservation], stock: dict[int, StockItem]) -> None:
    for reservation in reservations:
        if reservation.status != Reservation.Status.ACTIVE:
            continue
        item = stock[reservation.product_id]
        item.quantity_reserved -= reservation.quantity
        item.save(update_fields=["quantity_reserved", "updated_at"])
        _stock_changed(item)
        reservation.status = Reservation.Status.RELEASED
        reservation.save(update_fields=["status", "updated_at"])


def stock_release(*, reference: str) -> list[Reservation]:
    """Give active reservations back to the shelf. Releasing twice is a no-op; a confirmed one cannot be."""
    ownership_require_owner(aggregate_type=STOCK)
    reference = _clean_reference(reference)
    with transaction.atomic():
        reservations, stock = _reservations_locked(reference)
        if any(r.status == Reservation.Status.CONFIRMED for r in reservations):
            raise Conflict(f"Reservation {reference!r} is already confirmed.", details={"reference": reference})
        _release_active(reservations, stock)
    return reservations


def stock_confirm(*, reference: str) -> list[Reservation]:
    """The goods leave with the order: on hand and reserved both drop. Confirming twice is a no-op."""
    ownership_require_owner(aggregate_type=STOCK)
    reference = _clean_reference(reference)
    with transaction.atomic():
        reservations, stock = _reservations_locked(reference)
        if any(r.status in (Reservation.Status.RELEASED, Reservation.Status.RETURNED) for r in reservations):
            raise Conflict(f"Reservation {reference!r} was released.", details={"reference": reference})
        for reservation in reservations:
            if reservation.status != Reservation.Status.ACTIVE:
                continue
            item = stock[reservation.product_id]
            item.quantity_reserved -= reservation.quantity
            item.quantity_on_hand -= reservation.quantity
            item.save(update_fields=["quantity_reserved", "quantity_on_hand", "updated_at"])
            _stock_changed(item)
            reservation.status = Reservation.Status.CONFIRMED
            reservation.save(update_fields=["status", "updated_at"])
    return reservations


def stock_return(*, reference: str) -> list[Reservation]:
    """Undo a reservation whatever happened to it: confirmed stock comes back on hand, active is released.

    Idempotent; the compensation a checkout runs when it does not know whether its confirm went through.
    """
    ownership_require_owner(aggregate_type=STOCK)
    reference = _clean_reference(reference)
    with transaction.atomic():
        reservations, stock = _reservations_locked(reference)
        for reservation in reservations:
            item = stock[reservation.product_id]
            if reservation.status == Reservation.Status.CONFIRMED:
                item.quantity_on_hand += reservation.quantity
                item.save(update_fields=["quantity_on_hand", "updated_at"])
                _stock_changed(item)
                reservation.status = Reservation.Status.RETURNED
                reservation.save(update_fields=["status", "updated_at"])
        _release_active(reservations, stock)
    return reservations


def reservations_expire_stale(*, older_than: timedelta) -> list[str]:
    """Release reservations left active longer than `older_than` (a checkout died between reserve and confirm).

    Returns the references released. A checkout that still confirms one later gets 409 and compensates.
    """
    ownership_require_owner(aggregate_type=STOCK)
    cutoff = timezone.now() - older_than
    references = sorted(set(
        Reservation.objects.filter(status=Reservation.Status.ACTIVE, created_at__lt=cutoff)
        .values_list("reference", flat=True)
    ))
    released = []
    for reference in references:
        with transaction.atomic():
            reservations, stock = _reservations_locked(reference)
            if any(r.status == Reservation.Status.ACTIVE for r in reservations):
                _release_active(reservations, stock)
                released.append(reference)
    return released


# -- follower path: apply the owner's state --------------------------------------------------------------------------


def product_apply_synced(*, product_id: int, data: dict[str, Any]) -> Product:
    """Remember that the product exists (and whether it is on sale)."""
    product, _ = Product.objects.update_or_create(id=product_id, defaults={"is_active": bool(data["is_active"])})
    return product


def product_discard_synced(*, product_id: int) -> None:
    """The product is gone: so is its stock row (CASCADE on the owner). A redelivered delete is a no-op."""
    with transaction.atomic():
        StockItem.objects.filter(product_id=product_id).delete()
        Product.objects.filter(id=product_id).delete()


def stock_apply_synced(*, product_id: int, data: dict[str, Any]) -> StockItem:
    """Make the product's stock row equal to the owner's levels (insert or update)."""
    with transaction.atomic():
        item, _ = StockItem.objects.select_for_update().get_or_create(product_id=product_id)
        item.quantity_on_hand = data["quantity_on_hand"]
        item.quantity_reserved = data["quantity_reserved"]
        item.save(update_fields=["quantity_on_hand", "quantity_reserved", "updated_at"])
    return item
