"""The storefront's event contract as the extracted services know it: the monolith's aggregates
(``monolith/events.py``) without the monolith's models, and the event type constants the services emit once
they own an aggregate. Each service binds the aggregates it holds to its own models (``<service>/aggregates.py``)
and lists them, plus the ones it only follows, in ``STRANGLER_SYNC["AGGREGATES"]``.

A copy, not an import: a service must not need the monolith's code (it outlives it).
``tests/extracted/test_contract.py`` checks both sides declare the same names, keys, actions and schemas.
"""

from strangler_sync.aggregates import Aggregate, Schema

PRODUCT = Aggregate(
    name="product",
    schemas={1: Schema(
        required={"id": int, "sku": str, "slug": str, "name": str, "price": str, "currency": str, "is_active": bool,
                  "category_id": (int, None)},
        optional={"description": str, "images": list},
    )},
)
CATEGORY = Aggregate(
    name="category",
    schemas={1: Schema(required={"id": int, "name": str, "slug": str, "parent_id": (int, None)},
                       optional={"description": str})},
)
STOCK = Aggregate(
    name="stock",
    key="product_id",
    actions=("changed",),
    schemas={1: Schema(required={"product_id": int, "quantity_on_hand": int, "quantity_reserved": int})},
)
REVIEW = Aggregate(
    name="review",
    schemas={1: Schema(
        required={"id": int, "product_id": int, "rating": int},
        optional={"user_id": (int, None), "title": str, "body": str, "status": str, "username": str,
                  "created_at": str, "updated_at": str},
    )},
)

PRODUCT_CREATED = PRODUCT.event("created")
PRODUCT_UPDATED = PRODUCT.event("updated")
PRODUCT_DELETED = PRODUCT.event("deleted")
PRODUCT_SNAPSHOT = PRODUCT.event("snapshot")

CATEGORY_CREATED = CATEGORY.event("created")
CATEGORY_UPDATED = CATEGORY.event("updated")
CATEGORY_DELETED = CATEGORY.event("deleted")
CATEGORY_SNAPSHOT = CATEGORY.event("snapshot")

STOCK_CHANGED = STOCK.event("changed")
STOCK_SNAPSHOT = STOCK.event("snapshot")

REVIEW_CREATED = REVIEW.event("created")
REVIEW_UPDATED = REVIEW.event("updated")
REVIEW_DELETED = REVIEW.event("deleted")
REVIEW_SNAPSHOT = REVIEW.event("snapshot")
