"""Inventory reads: stock rows (zeros for a known product without stock) and a reference's reservations."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import QuerySet

from servicekit.errors import NotFound

from .models import Product, Reservation, StockItem


def stock_get(*, product_id: int) -> StockItem:
    """The product's stock row; a product that never had stock gets an unsaved all-zero row."""
    item = StockItem.objects.filter(product_id=product_id).first()
    if item is not None:
        return item
    if not Product.objects.filter(id=product_id).exists():
        raise NotFound(f"Unknown product {product_id}.", details={"product": product_id})
    return StockItem(product_id=product_id, quantity_on_hand=0, quantity_reserved=0)


def stock_list(*, product_ids: Iterable[int] | None = None) -> QuerySet[StockItem] | list[StockItem]:
    """Stock rows ordered by product id: all of them (a queryset, to paginate), or the given products' rows
    with all-zero rows filled in for known products that never had stock."""
    if product_ids is None:
        return StockItem.objects.order_by("product_id")
    ids = sorted(set(product_ids))
    found = {item.product_id: item for item in StockItem.objects.filter(product_id__in=ids)}
    known = set(Product.objects.filter(id__in=ids).values_list("id", flat=True))
    return [found.get(pid) or StockItem(product_id=pid) for pid in ids if pid in known]


def reservation_list(*, reference: str) -> list[Reservation]:
    return list(Reservation.objects.filter(reference=reference).order_by("product_id"))
