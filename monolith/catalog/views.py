"""Catalog pages: product list (search, category, price filter, sort, pagination) and product detail."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import render

from monolith.catalog import selectors
from monolith.catalog.conf import catalog_settings
from monolith.catalog.serializers import ProductFilterSerializer
from monolith.inventory.selectors import stock_available_map
from monolith.reviews.forms import ReviewForm
from monolith.reviews.selectors import product_rating_summary, review_get_for_user, review_list_for_product
from servicekit.errors import DomainError, NotFound

SORT_LABELS = {"name": "Name A-Z", "-name": "Name Z-A", "price": "Price: low to high", "-price": "Price: high to low",
               "newest": "Newest"}  # fmt: skip
REVIEWS_ON_PAGE = 20


def _filters_from_query(request, *, category_slug: str | None) -> dict:
    """Selector kwargs from the query string; bad parameters are reported and dropped, not fatal."""
    params = request.GET.copy()
    if category_slug:
        params["category"] = category_slug
    params.pop("is_active", None)  # the storefront only ever shows products on sale
    parsed = ProductFilterSerializer(data=params)
    if not parsed.is_valid():
        for field, errors in parsed.errors.items():
            messages.error(request, f"Ignored {field}: {' '.join(str(e) for e in errors)}")
            params.pop(field, None)
        parsed = ProductFilterSerializer(data=params)
        parsed.is_valid()
    return parsed.selector_kwargs(staff=False)


def product_list(request, slug: str | None = None):
    category = None
    if slug:
        try:
            category = selectors.category_get(slug=slug)
        except NotFound:
            raise Http404("No such category.") from None
    filters = _filters_from_query(request, category_slug=slug)
    try:
        products = selectors.product_list(**filters)
    except DomainError as exc:  # unknown category or min > max: show the message and the unfiltered list
        messages.error(request, exc.message)
        filters = {"category": slug, "ordering": filters["ordering"]}
        products = selectors.product_list(**filters)
    page = Paginator(products, catalog_settings.PAGE_SIZE).get_page(request.GET.get("page"))
    stock = stock_available_map(product_ids=[p.id for p in page.object_list])
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "page": page,
        "products": [(p, stock.get(p.id, 0)) for p in page.object_list],
        "category": category,
        "breadcrumbs": selectors.category_ancestors(category=category) if category else [],
        "category_tree": selectors.category_tree(),
        "filters": filters,
        "sort_labels": SORT_LABELS,
        "query_without_page": query.urlencode(),
    }
    return render(request, "catalog/product_list.html", context)


def product_detail(request, slug: str):
    try:
        product = selectors.product_get(slug=slug, active_only=not request.user.is_staff)
    except NotFound:
        raise Http404("No such product.") from None
    average, count = product_rating_summary(product_id=product.id)
    own_review = review_get_for_user(product_id=product.id, user=request.user)
    context = {
        "product": product,
        "available": stock_available_map(product_ids=[product.id]).get(product.id, 0),
        "breadcrumbs": selectors.category_ancestors(category=product.category) if product.category else [],
        "rating_average": average,
        "rating_count": count,
        "reviews": review_list_for_product(product_id=product.id)[:REVIEWS_ON_PAGE],
        "own_review": own_review,
        "review_form": ReviewForm() if request.user.is_authenticated and own_review is None else None,
    }
    return render(request, "catalog/product_detail.html", context)
