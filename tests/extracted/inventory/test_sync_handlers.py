"""Sync handlers through the real inbox: stock levels and product ids follow the owner, in any arrival order."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime

import pytest

from extracted import events
from extracted.inventory.stock.models import Product, StockItem
from strangler_sync.consumer import APPLIED, DUPLICATE, OWN, STALE, event_parse, inbox_apply
from strangler_sync.models import OutboxEvent
from strangler_sync.ownership import ownership_set

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def envelope(event_type: str, aggregate_id: int, version: int, payload: dict, *, origin: str = "monolith") -> dict:
    return {
        "message_id": str(uuid.uuid4()), "event_type": event_type, "aggregate_type": event_type.split(".")[0],
        "aggregate_id": str(aggregate_id), "version": version, "schema_version": 1, "payload": payload,
        "occurred_at": T0.isoformat(), "origin": origin, "correlation_id": "req-1",
    }  # fmt: skip


def stock(product_id: int, version: int, on_hand: int, reserved: int = 0, **kw) -> dict:
    payload = {"product_id": product_id, "quantity_on_hand": on_hand, "quantity_reserved": reserved}
    return envelope(events.STOCK_CHANGED, product_id, version, payload, **kw)


def product(product_id: int, version: int, *, is_active: bool = True, event_type=events.PRODUCT_UPDATED) -> dict:
    payload = {"id": product_id, "sku": f"S-{product_id}", "slug": f"s-{product_id}", "name": "P", "price": "1.00",
               "currency": "USD", "is_active": is_active, "category_id": None}
    return envelope(event_type, product_id, version, payload)


def apply(body: dict) -> str:
    return inbox_apply(event=event_parse(envelope=body))


def levels(product_id: int) -> tuple[int, int]:
    item = StockItem.objects.get(product_id=product_id)
    return item.quantity_on_hand, item.quantity_reserved


def test_stock_and_products_follow_the_owner():
    assert apply(product(7, 1, event_type=events.PRODUCT_CREATED)) == APPLIED
    assert apply(stock(7, 1, on_hand=5)) == APPLIED
    assert apply(stock(7, 2, on_hand=5, reserved=2)) == APPLIED
    assert levels(7) == (5, 2)
    assert apply(product(7, 2, is_active=False)) == APPLIED
    assert Product.objects.get(id=7).is_active is False
    assert not OutboxEvent.objects.exists()  # a follower never echoes


def test_redelivery_and_stale_versions_change_nothing():
    newest = stock(3, 4, on_hand=9, reserved=1)
    assert apply(newest) == APPLIED
    assert apply(newest) == DUPLICATE
    assert apply(stock(3, 2, on_hand=1)) == STALE
    assert levels(3) == (9, 1)


def test_any_arrival_order_ends_in_the_newest_state():
    bodies = [stock(11, v, on_hand=10 + v, reserved=v) for v in range(1, 9)] + [product(11, 1)]
    for seed in range(3):
        random.Random(seed).shuffle(bodies)
        for body in bodies:
            apply(body)
        assert levels(11) == (18, 8)
        assert Product.objects.filter(id=11).exists()


def test_a_deleted_product_takes_its_stock_with_it():
    apply(product(5, 1))
    apply(stock(5, 1, on_hand=4))
    assert apply(envelope(events.PRODUCT_DELETED, 5, 2, {"id": 5})) == APPLIED
    assert not Product.objects.filter(id=5).exists() and not StockItem.objects.filter(product_id=5).exists()


def test_own_events_coming_back_are_skipped(sync_config):
    ownership_set(aggregate_type="stock", owner="inventory")
    apply(stock(9, 1, on_hand=3))
    assert apply(stock(9, 2, on_hand=100, origin="inventory")) == OWN
    assert levels(9) == (3, 0)
