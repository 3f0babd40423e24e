"""The monolith's stock on the data plane: every change emits its full state; after the flip it follows instead."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from monolith import events
from monolith.inventory import services
from monolith.inventory.models import StockItem
from strangler_sync.consumer import APPLIED, OWN, event_parse, inbox_apply
from strangler_sync.errors import NotOwner
from strangler_sync.models import OutboxEvent
from strangler_sync.ownership import ownership_set
from tests.monolith.catalog.factories import make_product

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def private_ownership(settings, tmp_path):
    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "OWNERSHIP_FILE": str(tmp_path / "ownership.json"),
                               "RELAY_TRIGGER": "none"}


def _stock_events(product_id: int) -> list[tuple[str, int, dict]]:
    rows = OutboxEvent.objects.filter(aggregate_type="stock", aggregate_id=str(product_id)).order_by("version")
    return [(e.event_type, e.version, e.payload) for e in rows]


def test_every_stock_change_emits_its_full_state():
    lamp = make_product("Lamp")
    services.stock_set(product_id=lamp.id, quantity_on_hand=5)
    services.stock_reserve(reference="R-1", lines=[(lamp.id, 2)])
    services.stock_confirm(reference="R-1")
    services.stock_return(reference="R-1")
    services.stock_adjust(product_id=lamp.id, delta=-1)
    states = [(v, p["quantity_on_hand"], p["quantity_reserved"]) for _, v, p in _stock_events(lamp.id)]
    assert states == [(1, 5, 0), (2, 5, 2), (3, 3, 0), (4, 5, 0), (5, 4, 0)]
    assert {t for t, _, _ in _stock_events(lamp.id)} == {events.STOCK_CHANGED}


def test_a_refused_reservation_emits_nothing():
    lamp = make_product("Lamp", stock=1)
    with pytest.raises(services.OutOfStock):
        services.stock_reserve(reference="R-2", lines=[(lamp.id, 2)])
    assert _stock_events(lamp.id) == []


def test_after_the_flip_writes_are_refused_and_the_service_events_are_followed():
    lamp = make_product("Lamp", stock=5)
    ownership_set(aggregate_type="stock", owner="inventory")
    with pytest.raises(NotOwner):
        services.stock_reserve(reference="R-3", lines=[(lamp.id, 1)])
    with pytest.raises(NotOwner):
        services.stock_set(product_id=lamp.id, quantity_on_hand=9)

    def envelope(version: int, on_hand: int, reserved: int, origin: str = "inventory") -> dict:
        return {"message_id": str(uuid.uuid4()), "event_type": events.STOCK_CHANGED, "aggregate_type": "stock",
                "aggregate_id": str(lamp.id), "version": version, "schema_version": 1, "origin": origin,
                "payload": {"product_id": lamp.id, "quantity_on_hand": on_hand, "quantity_reserved": reserved},
                "occurred_at": datetime(2026, 5, 1, tzinfo=UTC).isoformat(), "correlation_id": ""}

    assert inbox_apply(event=event_parse(envelope=envelope(1, 5, 2))) == APPLIED
    item = StockItem.objects.get(product=lamp)
    assert (item.quantity_on_hand, item.quantity_reserved, item.quantity_available) == (5, 2, 3)
    other = make_product("Other")  # a product whose stock row only the service has made so far
    body = envelope(1, 7, 0)
    body.update(aggregate_id=str(other.id), payload={"product_id": other.id, "quantity_on_hand": 7,
                                                      "quantity_reserved": 0})
    assert inbox_apply(event=event_parse(envelope=body)) == APPLIED
    assert StockItem.objects.get(product=other).quantity_on_hand == 7
    assert inbox_apply(event=event_parse(envelope=envelope(2, 99, 0, origin="monolith"))) == OWN
