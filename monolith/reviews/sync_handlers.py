"""The monolith as follower of reviews: once ownership of "review" moves to the reviews service, apply its events.

Autodiscovered by strangler_sync (``<app>.sync_handlers``). Events carry the review's full state with the
owner's timestamps; rows are written with queryset ``update()``/``create()`` + ``update()`` because
``auto_now`` fields would overwrite those timestamps. The local table keeps the storefront's review list
and ``product_rating_summary`` (the product page's average) right whichever side owns reviews.
"""

from __future__ import annotations

from django.utils.dateparse import parse_datetime

from monolith import events
from monolith.reviews.models import Review
from strangler_sync.conf import sync_settings
from strangler_sync.handlers import SyncEvent, sync_handler


@sync_handler(events.REVIEW_CREATED, events.REVIEW_UPDATED, events.REVIEW_SNAPSHOT)
def review_follow(*, event: SyncEvent) -> None:
    if event.origin == sync_settings().origin:  # our own event, back on our queue: this database has it
        return
    data = event.payload
    fields = {"product_id": data["product_id"], "user_id": data["user_id"], "rating": data["rating"],
              "title": data.get("title") or "", "body": data.get("body") or ""}
    timestamps = {}
    for name in ("created_at", "updated_at"):
        raw = data.get(name)
        timestamps[name] = parse_datetime(raw) if isinstance(raw, str) and raw else event.occurred_at
    if not Review.objects.filter(id=event.aggregate_id_int).update(**fields, **timestamps):
        Review.objects.create(id=event.aggregate_id_int, **fields)
        Review.objects.filter(id=event.aggregate_id_int).update(**timestamps)


@sync_handler(events.REVIEW_DELETED)
def review_follow_delete(*, event: SyncEvent) -> None:
    if event.origin == sync_settings().origin:
        return
    Review.objects.filter(id=event.aggregate_id_int).delete()
