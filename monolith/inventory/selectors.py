"""Inventory reads: how much of each product can still be sold."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import F, QuerySet

from monolith.catalog.models import Product
from monolith.inventory.models import Reservation, StockItem
from servicekit.errors import NotFound


def stock_available_map(*, product_ids: Iterable[int]) -> dict[int, int]:
    """{product_id: on_hand - reserved} for the given products; products without a stock row are absent."""
    ids = list(product_ids)
    if not ids:
        return {}
    rows = (
        StockItem.objects.filter(product_id__in=ids)
        .annotate(available=F("quantity_on_hand") - F("quantity_reserved"))
        .values_list("product_id", "available")
    )
    return {product_id: max(int(available), 0) for product_id, available in rows}


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
    with all-zero rows filled in for products that never had stock."""
    if product_ids is None:
        return StockItem.objects.order_by("product_id")
    ids = sorted(set(product_ids))
    found = {item.product_id: item for item in StockItem.objects.filter(product_id__in=ids)}
    known = set(Product.objects.filter(id__in=ids).values_list("id", flat=True))
    return [found.get(pid) or StockItem(product_id=pid) for pid in ids if pid in known]


def reservation_list(*, reference: str) -> list[Reservation]:
    return list(Reservation.objects.filter(reference=reference).order_by("product_id"))
