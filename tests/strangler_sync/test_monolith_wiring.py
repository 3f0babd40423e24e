"""The monolith's catalog services emit state events in the write's transaction and refuse writes they do not own.

Categories publish explicitly (``event_publish``); products are captured by the catalog app's triggers
(``capture="automatic"``, migration ``catalog.0005_strangler_capture``), with no ``event_publish`` on the path.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from monolith import events
from monolith.catalog import services
from monolith.catalog.models import Product
from strangler_sync.errors import NotOwner
from strangler_sync.models import OutboxEvent
from strangler_sync.ownership import ownership_set
from strangler_sync.snapshots import aggregate_payload

pytestmark = pytest.mark.django_db


def outbox() -> list[tuple[str, str, int]]:
    return list(OutboxEvent.objects.order_by("id").values_list("event_type", "aggregate_id", "version"))


@pytest.fixture
def published(monkeypatch) -> list[str]:
    """The aggregate types the catalog services hand to event_publish."""
    calls = []
    real = services.event_publish

    def spy(**kwargs):
        calls.append(kwargs["aggregate_type"])
        return real(**kwargs)

    monkeypatch.setattr(services, "event_publish", spy)
    return calls


def test_product_writes_emit_versioned_full_state_events(published):
    category = services.category_create(name="Tools")
    product = services.product_create(sku="HAM-1", name="Hammer", price="12.50", category=category)
    services.product_update(product=product, data={"price": "13.00"})
    services.product_deactivate(product=product)
    services.product_delete(product=Product.objects.get(id=product.id))
    assert outbox() == [
        (events.CATEGORY_CREATED, str(category.id), 1),
        (events.PRODUCT_CREATED, str(product.id), 1),
        (events.PRODUCT_UPDATED, str(product.id), 2),
        (events.PRODUCT_UPDATED, str(product.id), 3),
        (events.PRODUCT_DELETED, str(product.id), 4),
    ]
    updated = OutboxEvent.objects.get(event_type=events.PRODUCT_UPDATED, version=2)
    assert updated.payload["price"] == "13.00" and updated.payload["category_id"] == category.id
    assert OutboxEvent.objects.get(event_type=events.PRODUCT_DELETED).payload == {"id": product.id}
    assert published == ["category"]  # the product's four events were written by its capture triggers


def test_a_product_write_through_the_api_carries_the_requests_correlation_id_and_trace(published, django_user_model):
    staff = APIClient()
    staff.force_authenticate(django_user_model.objects.create_user(username="staff", password="pw", is_staff=True))
    caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    response = staff.post("/api/products/", {"sku": "API-1", "name": "Api", "price": "3.00"}, format="json",
                          HTTP_X_REQUEST_ID="req-capture-1", HTTP_TRACEPARENT=caller)
    assert response.status_code == 201, response.content
    row = OutboxEvent.objects.get(event_type=events.PRODUCT_CREATED, aggregate_id=str(response.json()["id"]))
    assert row.correlation_id == "req-capture-1"
    assert row.traceparent == response["traceparent"] and "4bf92f3577b34da6a3ce929d0e0e4736" in row.traceparent
    assert published == []


def test_payload_is_the_rows_canonical_state():
    product = services.product_create(sku="SAW-1", name="Saw", price=Decimal("20"))
    event = OutboxEvent.objects.get(event_type=events.PRODUCT_CREATED)
    assert event.payload == aggregate_payload(aggregate_type="product", instance=Product.objects.get(id=product.id))


def test_category_update_and_delete_emit_events():
    category = services.category_create(name="Garden")
    services.category_update(category=category, data={"name": "Garden tools"})
    services.category_delete(category=category)
    assert [e[0] for e in outbox()] == [events.CATEGORY_CREATED, events.CATEGORY_UPDATED, events.CATEGORY_DELETED]


def test_a_refused_write_emits_nothing():
    product = services.product_create(sku="DRL-1", name="Drill", price="50.00")
    before = outbox()
    with pytest.raises(Exception):  # noqa: B017 - any validation error
        services.product_update(product=product, data={"price": "-1"})
    assert outbox() == before


def test_after_the_flip_the_monolith_refuses_catalog_writes(django_user_model):
    product = services.product_create(sku="AXE-1", name="Axe", price="30.00")
    ownership_set(aggregate_type="product", owner="catalog")
    with pytest.raises(NotOwner):
        services.product_update(product=product, data={"price": "31.00"})
    services.category_create(name="Still ours")  # categories were not flipped
    staff = django_user_model.objects.create_user(username="staff", password="pw", is_staff=True)
    api = APIClient()
    api.force_authenticate(staff)
    response = api.patch(f"/api/products/{product.id}/", {"price": "32.00"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_owner"
    assert Product.objects.get(id=product.id).price == Decimal("30.00")
