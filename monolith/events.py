"""The storefront's aggregates as the monolith declares them (``strangler_sync.aggregates``), and the event
type constants its write services emit: the monolith owns these names and payload schemas.

``STRANGLER_SYNC["AGGREGATES"]`` in ``monolith/settings.py`` lists the declarations. The extracted services
keep their own copy of this contract (``extracted/events.py``); ``tests/extracted/test_contract.py`` checks the
two agree, so a change here that the services do not know yet fails a test instead of a consumer.
"""

from strangler_sync.aggregates import Aggregate, Schema

_TIMESTAMPS = ["created_at", "updated_at"]

PRODUCT = Aggregate(
    name="product",
    schemas={1: Schema(
        required={"id": int, "sku": str, "slug": str, "name": str, "price": str, "currency": str, "is_active": bool,
                  "category_id": (int, None)},
        optional={"description": str, "images": list},
    )},
    model="catalog.Product",
    # database triggers write its events, whatever makes the change (strangler_sync.capture; docs/topics/capture.md)
    capture="automatic",
    fields=["id", "sku", "slug", "name", "description", "price", "currency", "is_active", "category_id", "images",
            *_TIMESTAMPS],
)
CATEGORY = Aggregate(
    name="category",
    schemas={1: Schema(required={"id": int, "name": str, "slug": str, "parent_id": (int, None)},
                       optional={"description": str})},
    model="catalog.Category",
    fields=["id", "name", "slug", "parent_id", "description", *_TIMESTAMPS],
)
STOCK = Aggregate(
    name="stock",
    key="product_id",
    actions=("changed",),
    schemas={1: Schema(required={"product_id": int, "quantity_on_hand": int, "quantity_reserved": int})},
    model="inventory.StockItem",
    fields=["product_id", "quantity_on_hand", "quantity_reserved"],
)
REVIEW = Aggregate(
    name="review",
    schemas={1: Schema(
        required={"id": int, "product_id": int, "rating": int},
        # username and the owner's timestamps: what the reviews service shows (users live in the monolith)
        optional={"user_id": (int, None), "title": str, "body": str, "status": str, "username": str,
                  "created_at": str, "updated_at": str},
    )},
    model="reviews.Review",
    fields=["id", "product_id", "user_id", "rating", "title", "body"],
    # payload = fields + username and timestamps, which the reviews service shows
    snapshot="monolith.reviews.sync.review_payload",
)

PRODUCT_CREATED = PRODUCT.event("created")
PRODUCT_UPDATED = PRODUCT.event("updated")
PRODUCT_DELETED = PRODUCT.event("deleted")
PRODUCT_SNAPSHOT = PRODUCT.event("snapshot")  # backfill/repair: the current row, version unchanged

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
