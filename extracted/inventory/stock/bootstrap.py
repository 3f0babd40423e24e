"""Seeding the service offline from the monolith's dumpdata (``catalog.product`` ids and ``inventory.stockitem``).

The online path is the data plane: ``sync_backfill --aggregate product`` and ``--aggregate stock`` on the
monolith stream snapshot events to this service's consumer. Loading the same dump twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction

from servicekit.errors import InvalidInput

from .models import Product, StockItem

MONOLITH_PRODUCT = "catalog.product"
MONOLITH_STOCK = "inventory.stockitem"


@dataclass(frozen=True)
class LoadResult:
    products: int
    stock_items: int


def inventory_load_dump(*, records: Iterable[dict], batch_size: int = 1000) -> LoadResult:
    """Upsert product ids and stock levels by product id; other models in the dump are ignored."""
    products: list[Product] = []
    stock: list[StockItem] = []
    for record in records:
        model, fields = record.get("model"), record.get("fields") or {}
        try:
            if model == MONOLITH_PRODUCT:
                products.append(Product(id=int(record["pk"]), is_active=bool(fields.get("is_active", True))))
            elif model == MONOLITH_STOCK:
                stock.append(StockItem(product_id=int(fields["product"]),
                                       quantity_on_hand=int(fields["quantity_on_hand"]),
                                       quantity_reserved=int(fields["quantity_reserved"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"Malformed {model} record {record.get('pk')!r}: {exc}") from exc
    with transaction.atomic():
        for start in range(0, len(products), batch_size):
            Product.objects.bulk_create(products[start:start + batch_size], update_conflicts=True,
                                        unique_fields=["id"], update_fields=["is_active"])
        for start in range(0, len(stock), batch_size):
            StockItem.objects.bulk_create(stock[start:start + batch_size], update_conflicts=True,
                                          unique_fields=["product"],
                                          update_fields=["quantity_on_hand", "quantity_reserved"])
    return LoadResult(products=len(products), stock_items=len(stock))
