"""Test data builders for catalog (and reviews) tests; they go through the real services."""

from __future__ import annotations

import itertools
from decimal import Decimal

from monolith.catalog import services
from monolith.catalog.models import Category, Product
from monolith.inventory.models import StockItem

_numbers = itertools.count(1)


def make_category(name: str, *, parent: Category | None = None, slug: str | None = None) -> Category:
    return services.category_create(name=name, parent=parent, slug=slug)


def make_product(
    name: str | None = None,
    *,
    price: str | Decimal = "10.00",
    category: Category | None = None,
    sku: str | None = None,
    description: str = "",
    is_active: bool = True,
    stock: int | None = None,
) -> Product:
    number = next(_numbers)
    product = services.product_create(
        sku=sku or f"T-{number:05d}",
        name=name or f"Test product {number}",
        price=price,
        category=category,
        description=description,
        is_active=is_active,
    )
    if stock is not None:
        StockItem.objects.create(product=product, quantity_on_hand=stock)
    return product
