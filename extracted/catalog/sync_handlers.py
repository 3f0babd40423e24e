"""Sync handlers: apply the owner's product/category events to the catalog service's tables.

Registered when the app loads (``products.apps.ProductsConfig.ready`` imports this module). Each
event carries the aggregate's full state, so every handler is an idempotent upsert (or delete) by id;
the consumer's inbox skips redeliveries and its version guard skips stale events before we run.
Handlers use the follower write path (``*_apply_synced``), which never emits events back.

Events this service emitted itself (origin "catalog", after the ownership flip) come back on its own
queue, since it subscribes to the same routing keys; they describe state this database already has,
and applying one late would roll the row back to an older state, so they are skipped.

Events of different rows are not ordered with each other, so an upsert can briefly collide with a
unique slug/SKU another row still holds (a rename whose event has not arrived yet): the handler then
fails, the consumer retries the message, and it applies once the other row's event has landed.
"""

from __future__ import annotations

from extracted import events
from strangler_sync.conf import sync_settings
from strangler_sync.handlers import SyncEvent, sync_bulk_handler, sync_handler

from .products.services import (
    category_apply_synced,
    category_discard_synced,
    product_apply_synced,
    product_apply_synced_many,
    product_discard_synced,
)


def _own(event: SyncEvent) -> bool:
    return event.origin == sync_settings().origin


@sync_handler(events.CATEGORY_CREATED, events.CATEGORY_UPDATED, events.CATEGORY_SNAPSHOT)
def category_upsert(*, event: SyncEvent) -> None:
    if _own(event):
        return
    category_apply_synced(category_id=event.aggregate_id_int, data=event.payload, occurred_at=event.occurred_at)


@sync_handler(events.CATEGORY_DELETED)
def category_delete(*, event: SyncEvent) -> None:
    if _own(event):
        return
    category_discard_synced(category_id=event.aggregate_id_int)


@sync_handler(events.PRODUCT_CREATED, events.PRODUCT_UPDATED, events.PRODUCT_SNAPSHOT)
def product_upsert(*, event: SyncEvent) -> None:
    if _own(event):
        return
    product_apply_synced(product_id=event.aggregate_id_int, data=event.payload, occurred_at=event.occurred_at)


@sync_bulk_handler(events.PRODUCT_CREATED, events.PRODUCT_UPDATED, events.PRODUCT_SNAPSHOT)
def product_upsert_many(*, events: list[SyncEvent]) -> None:
    """product_upsert for a batch (one statement); events without created_at take the per-row path."""
    rows = [e for e in events if not _own(e) and e.payload.get("created_at")]
    for event in events:
        if not _own(event) and not event.payload.get("created_at"):
            product_upsert(event=event)
    if rows:
        product_apply_synced_many(items=[(e.aggregate_id_int, e.payload, e.occurred_at) for e in rows])


@sync_handler(events.PRODUCT_DELETED)
def product_delete(*, event: SyncEvent) -> None:
    if _own(event):
        return
    product_discard_synced(product_id=event.aggregate_id_int)
