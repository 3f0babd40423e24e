"""The monolith as follower: once a plan flips product/category ownership to the catalog service, apply its events.

Autodiscovered by strangler_sync (``<app>.sync_handlers``). Events carry full state; the consumer's
inbox and version guard already dropped duplicates and stale versions. Rows are written with
queryset ``update()``/``create()`` + ``update()`` rather than ``save()`` because ``auto_now`` fields
would overwrite the owner's timestamps (and verify hashes them). Nothing here emits events (and
``event_publish`` is a no-op while a synced event is applied), so the flip cannot loop.
"""

from __future__ import annotations

from decimal import Decimal

from django.utils.dateparse import parse_datetime

from monolith import events
from monolith.catalog.models import Category, Product
from strangler_sync.handlers import SyncEvent, sync_handler


def _timestamps(event: SyncEvent) -> dict:
    values = {}
    for name in ("created_at", "updated_at"):
        raw = event.payload.get(name)
        values[name] = parse_datetime(raw) if isinstance(raw, str) and raw else event.occurred_at
    return values


def _upsert(model, *, row_id: int, fields: dict, timestamps: dict) -> None:
    if not model.objects.filter(id=row_id).update(**fields, **timestamps):
        model.objects.create(id=row_id, **fields)
        model.objects.filter(id=row_id).update(**timestamps)  # auto_now(_add) ignored the owner's values


@sync_handler(events.CATEGORY_CREATED, events.CATEGORY_UPDATED, events.CATEGORY_SNAPSHOT)
def category_follow(*, event: SyncEvent) -> None:
    data = event.payload
    fields = {"name": data["name"], "slug": data["slug"], "parent_id": data["parent_id"],
              "description": data.get("description") or ""}
    _upsert(Category, row_id=event.aggregate_id_int, fields=fields, timestamps=_timestamps(event))


@sync_handler(events.CATEGORY_DELETED)
def category_follow_delete(*, event: SyncEvent) -> None:
    Product.objects.filter(category_id=event.aggregate_id_int).update(category=None)  # SET_NULL, as on the owner
    Category.objects.filter(id=event.aggregate_id_int).delete()


@sync_handler(events.PRODUCT_CREATED, events.PRODUCT_UPDATED, events.PRODUCT_SNAPSHOT)
def product_follow(*, event: SyncEvent) -> None:
    data = event.payload
    fields = {
        "sku": data["sku"], "slug": data["slug"], "name": data["name"], "description": data.get("description") or "",
        "price": Decimal(data["price"]), "currency": data["currency"], "is_active": data["is_active"],
        "images": list(data.get("images") or []), "category_id": data["category_id"],
    }
    _upsert(Product, row_id=event.aggregate_id_int, fields=fields, timestamps=_timestamps(event))


@sync_handler(events.PRODUCT_DELETED)
def product_follow_delete(*, event: SyncEvent) -> None:
    Product.objects.filter(id=event.aggregate_id_int).delete()
