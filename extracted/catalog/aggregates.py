"""The catalog service's aggregates: the storefront contract (``extracted.events``) bound to its own models,
with the same canonical fields as the monolith's, so verify compares equal rows."""

from extracted import events

_TIMESTAMPS = ["created_at", "updated_at"]

PRODUCT = events.PRODUCT.bind(
    model="catalog_service.Product",
    fields=["id", "sku", "slug", "name", "description", "price", "currency", "is_active", "category_id", "images",
            *_TIMESTAMPS],
)
CATEGORY = events.CATEGORY.bind(
    model="catalog_service.Category",
    fields=["id", "name", "slug", "parent_id", "description", *_TIMESTAMPS],
)
