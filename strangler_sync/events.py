"""Event type names (``<aggregate>.<action>``); producers and handlers use these constants, never literals.

Events carry the aggregate's full state after the change (not a delta), so a follower can apply the
newest version it sees and drop older ones (see ``strangler_sync.consumer``).
"""

PRODUCT_CREATED = "product.created"
PRODUCT_UPDATED = "product.updated"
PRODUCT_DELETED = "product.deleted"
PRODUCT_SNAPSHOT = "product.snapshot"  # backfill/repair: the current row, version unchanged

CATEGORY_CREATED = "category.created"
CATEGORY_UPDATED = "category.updated"
CATEGORY_DELETED = "category.deleted"
CATEGORY_SNAPSHOT = "category.snapshot"

STOCK_CHANGED = "stock.changed"
STOCK_SNAPSHOT = "stock.snapshot"

REVIEW_CREATED = "review.created"
REVIEW_UPDATED = "review.updated"
REVIEW_DELETED = "review.deleted"
REVIEW_SNAPSHOT = "review.snapshot"

SNAPSHOT_ACTION = "snapshot"


def snapshot_event_type(aggregate_type: str) -> str:
    return f"{aggregate_type}.{SNAPSHOT_ACTION}"


def is_delete(event_type: str) -> bool:
    return event_type.endswith(".deleted")
