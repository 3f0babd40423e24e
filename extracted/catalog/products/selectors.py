"""Catalog reads: the monolith's product filters/sorts and category lookups, over the service's own tables.

Copied from monolith/catalog/selectors.py when the catalog was extracted: the proxy compares both
sides' answers, so the semantics (descendant categories, search terms, tie-breaking by id) must match.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from django.db.models import Q, QuerySet

from servicekit.errors import InvalidInput, NotFound

from .models import Category, Product

# ordering name -> ORDER BY; id breaks ties so pages never overlap or skip rows.
PRODUCT_ORDERINGS: dict[str, tuple[str, ...]] = {
    "name": ("name", "id"),
    "-name": ("-name", "-id"),
    "price": ("price", "id"),
    "-price": ("-price", "-id"),
    "newest": ("-created_at", "-id"),
}
DEFAULT_PRODUCT_ORDERING = "name"


def category_list() -> QuerySet[Category]:
    return Category.objects.order_by("name", "id")


def category_get(*, category_id: int | None = None, slug: str | None = None) -> Category:
    lookup = {"id": category_id} if category_id is not None else {"slug": slug}
    try:
        return Category.objects.select_related("parent").get(**lookup)
    except Category.DoesNotExist:
        raise NotFound("Category not found.") from None


def category_descendant_ids(*, category: Category) -> list[int]:
    """The category's id and the ids of all categories below it."""
    children: dict[int | None, list[int]] = defaultdict(list)
    for category_id, parent_id in Category.objects.values_list("id", "parent_id"):
        children[parent_id].append(category_id)
    found, stack, seen = [], [category.id], set()
    while stack:
        current = stack.pop()
        if current in seen:  # a follower may briefly hold a cycle while parent moves are in flight
            continue
        seen.add(current)
        found.append(current)
        stack.extend(children[current])
    return sorted(found)


def product_list(
    *,
    category: str | None = None,
    min_price: Decimal | None = None,
    max_price: Decimal | None = None,
    q: str | None = None,
    is_active: bool | None = True,
    ordering: str = DEFAULT_PRODUCT_ORDERING,
) -> QuerySet[Product]:
    """Products matching every given filter.

    category is a slug and includes its subcategories; q matches each whitespace-separated term
    against name, SKU or description (case-insensitive); is_active=None returns both.
    """
    if ordering not in PRODUCT_ORDERINGS:
        raise InvalidInput(
            f"Unknown ordering {ordering!r}.", details={"ordering": [f"Choose one of {', '.join(PRODUCT_ORDERINGS)}."]}
        )
    if min_price is not None and max_price is not None and min_price > max_price:
        raise InvalidInput("min_price is above max_price.", details={"min_price": ["Must not exceed max_price."]})
    products = Product.objects.select_related("category")
    if is_active is not None:
        products = products.filter(is_active=is_active)
    if category:
        try:
            root = Category.objects.get(slug=category)
        except Category.DoesNotExist:
            raise NotFound(
                f"Unknown category {category!r}.", details={"category": ["No category with this slug."]}
            ) from None
        products = products.filter(category_id__in=category_descendant_ids(category=root))
    if min_price is not None:
        products = products.filter(price__gte=min_price)
    if max_price is not None:
        products = products.filter(price__lte=max_price)
    for term in (q or "").split():
        products = products.filter(Q(name__icontains=term) | Q(sku__icontains=term) | Q(description__icontains=term))
    return products.order_by(*PRODUCT_ORDERINGS[ordering])


def product_get(*, product_id: int | None = None, slug: str | None = None, active_only: bool = False) -> Product:
    """One product by id or slug; NotFound when missing (or inactive, with active_only)."""
    lookup = {"id": product_id} if product_id is not None else {"slug": slug}
    products = Product.objects.select_related("category")
    if active_only:
        products = products.filter(is_active=True)
    try:
        return products.get(**lookup)
    except Product.DoesNotExist:
        raise NotFound("Product not found.") from None
