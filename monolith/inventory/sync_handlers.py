"""The monolith as follower of stock: once ownership of "stock" moves to the inventory service, apply its levels.

Autodiscovered by strangler_sync (``<app>.sync_handlers``). Events carry the full state of a product's
stock row; the consumer's inbox and version guard already dropped duplicates and stale versions. The
local rows keep the storefront's availability (product pages, cart checks) right after the flip.
Reservations stay in the inventory service: checkout goes through its API. Nothing here emits events.
"""

from __future__ import annotations

from monolith import events
from monolith.inventory.models import StockItem
from strangler_sync.conf import sync_settings
from strangler_sync.handlers import SyncEvent, sync_handler


@sync_handler(events.STOCK_CHANGED, events.STOCK_SNAPSHOT)
def stock_follow(*, event: SyncEvent) -> None:
    if event.origin == sync_settings().origin:  # our own event, back on our queue: this database has it
        return
    levels = {"quantity_on_hand": event.payload["quantity_on_hand"],
              "quantity_reserved": event.payload["quantity_reserved"]}
    if not StockItem.objects.filter(product_id=event.aggregate_id_int).update(**levels):
        StockItem.objects.create(product_id=event.aggregate_id_int, **levels)
