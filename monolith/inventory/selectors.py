"""Inventory reads: how much of each product can still be sold."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import F

from monolith.inventory.models import StockItem


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
