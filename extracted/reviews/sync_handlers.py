"""Sync handlers: apply the owner's review events and the catalog's product events to the reviews service's tables.

Registered when the app loads (``ratings.apps.RatingsConfig.ready`` imports this module). Each event
carries the aggregate's full state, so every handler is an idempotent upsert (or delete) by id; the
consumer's inbox skips redeliveries and its version guard skips stale events before we run. Handlers use
the follower write path (``*_apply_synced``), which never emits events back.

Review events this service emitted itself (origin "reviews", after the flip) come back on its own queue;
they describe state this database already has, and applying one late would roll a row back: skipped.
"""

from __future__ import annotations

from extracted import events
from strangler_sync.conf import sync_settings
from strangler_sync.handlers import SyncEvent, sync_handler

from .ratings.services import (
    product_apply_synced,
    product_discard_synced,
    review_apply_synced,
    review_discard_synced,
)


def _own(event: SyncEvent) -> bool:
    return event.origin == sync_settings().origin


@sync_handler(events.PRODUCT_CREATED, events.PRODUCT_UPDATED, events.PRODUCT_SNAPSHOT)
def product_upsert(*, event: SyncEvent) -> None:
    product_apply_synced(product_id=event.aggregate_id_int, data=event.payload)


@sync_handler(events.PRODUCT_DELETED)
def product_delete(*, event: SyncEvent) -> None:
    product_discard_synced(product_id=event.aggregate_id_int)


@sync_handler(events.REVIEW_CREATED, events.REVIEW_UPDATED, events.REVIEW_SNAPSHOT)
def review_upsert(*, event: SyncEvent) -> None:
    if _own(event):
        return
    review_apply_synced(review_id=event.aggregate_id_int, data=event.payload, occurred_at=event.occurred_at)


@sync_handler(events.REVIEW_DELETED)
def review_delete(*, event: SyncEvent) -> None:
    if _own(event):
        return
    review_discard_synced(review_id=event.aggregate_id_int)
