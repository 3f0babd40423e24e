"""Catalog reads: product search/filter/sort, single products, and the category tree."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Q, QuerySet

from monolith.catalog.models import Category, Product
from servicekit.errors import InvalidInput, NotFound

# ordering name -> ORDER BY; id breaks ties so pages never overlap or skip rows.
PRODUCT_ORDERINGS: dict[str, tuple[str, ...]] = {
    "name": ("name", "id"),
    "-name": ("-name", "-id"),
    "price": ("price", "id"),
    "-price": ("-price", "-id"),
    "newest": ("-created_at", "-id"),
}
DEFAULT_PRODUCT_ORDERING = "name"


@dataclass
class CategoryNode:
    category: Category
    children: list[CategoryNode] = field(default_factory=list)


def category_list() -> QuerySet[Category]:
    return Category.objects.order_by("name", "id")


def category_get(*, category_id: int | None = None, slug: str | None = None) -> Category:
    lookup = {"id": category_id} if category_id is not None else {"slug": slug}
    try:
        return Category.objects.select_related("parent").get(**lookup)
    except Category.DoesNotExist:
        raise NotFound("Category not found.") from None


def category_tree() -> list[CategoryNode]:
    """Every category as a forest of nodes (roots first), children sorted by name; one query."""
    nodes = {c.id: CategoryNode(category=c) for c in category_list()}
    roots: list[CategoryNode] = []
    for node in nodes.values():  # category_list() is name-ordered, so appends keep children sorted
        parent_id = node.category.parent_id
        (nodes[parent_id].children if parent_id in nodes else roots).append(node)
    return roots


def category_descendant_ids(*, category: Category) -> list[int]:
    """The category's id and the ids of all categories below it."""
    children: dict[int | None, list[int]] = defaultdict(list)
    for category_id, parent_id in Category.objects.values_list("id", "parent_id"):
        children[parent_id].append(category_id)
    found, stack = [], [category.id]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children[current])
    return sorted(found)


def category_ancestors(*, category: Category) -> list[Category]:
    """Root first, ending with the category itself (for breadcrumbs)."""
    by_id = {c.id: c for c in Category.objects.all()}
    chain, node = [], by_id.get(category.id, category)
    while node is not None:
        chain.append(node)
        node = by_id.get(node.parent_id) if node.parent_id else None
    return list(reversed(chain))


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
        products = products.filter(
            Q(name__icontains=term) | Q(sku__icontains=term) | Q(description__icontains=term)
        )
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
