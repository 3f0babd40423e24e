"""Sync handlers: apply the owner's stock levels and the catalog's product ids to the inventory service's tables.

Registered when the app loads (``stock.apps.StockConfig.ready`` imports this module). Each event carries
the aggregate's full state, so every handler is an idempotent upsert (or delete) by id; the consumer's
inbox skips redeliveries and its version guard skips stale events before we run. Handlers use the
follower write path (``*_apply_synced``), which never emits events back.

Stock events this service emitted itself (origin "inventory", after the flip) come back on its own queue,
since it subscribes to ``stock.*``; they describe state this database already has, and applying one
late would roll a row back, so they are skipped. Product events come from whoever owns products
(the monolith, or the catalog service after its flip).
"""

from __future__ import annotations

from extracted import events
from strangler_sync.conf import sync_settings
from strangler_sync.handlers import SyncEvent, sync_handler

from .stock.services import product_apply_synced, product_discard_synced, stock_apply_synced


def _own(event: SyncEvent) -> bool:
    return event.origin == sync_settings().origin


@sync_handler(events.PRODUCT_CREATED, events.PRODUCT_UPDATED, events.PRODUCT_SNAPSHOT)
def product_upsert(*, event: SyncEvent) -> None:
    product_apply_synced(product_id=event.aggregate_id_int, data=event.payload)


@sync_handler(events.PRODUCT_DELETED)
def product_delete(*, event: SyncEvent) -> None:
    product_discard_synced(product_id=event.aggregate_id_int)


@sync_handler(events.STOCK_CHANGED, events.STOCK_SNAPSHOT)
def stock_upsert(*, event: SyncEvent) -> None:
    if _own(event):
        return
    stock_apply_synced(product_id=event.aggregate_id_int, data=event.payload)
