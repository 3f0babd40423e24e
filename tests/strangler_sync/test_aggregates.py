"""The aggregate declaration API: derived event types, key types, schemas per version, snapshot forms."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from rest_framework import serializers

from monolith import events
from monolith.catalog.models import Product
from strangler_sync.aggregates import Aggregate, Schema
from strangler_sync.errors import SchemaError
from strangler_sync.schemas import payload_validate
from strangler_sync.snapshots import aggregate_payload

TICKET = Aggregate(name="ticket", key_type=uuid.UUID, schemas={
    1: Schema(required={"id": str, "title": str}),
    2: Schema(required={"id": str, "title": str, "seats": int}, optional={"note": (str, None)}),
})


def test_event_types_are_derived_from_name_and_actions():
    assert TICKET.event("created") == "ticket.created" and TICKET.event("snapshot") == "ticket.snapshot"
    assert TICKET.event_types == ("ticket.created", "ticket.updated", "ticket.deleted", "ticket.snapshot")
    assert events.STOCK.event_types == ("stock.changed", "stock.snapshot")
    with pytest.raises(ValueError, match="no action 'deleted'"):
        events.STOCK.event("deleted")
    # the storefront's names on the wire are unchanged
    assert (events.PRODUCT_UPDATED, events.CATEGORY_DELETED, events.STOCK_CHANGED, events.REVIEW_SNAPSHOT) == (
        "product.updated", "category.deleted", "stock.changed", "review.snapshot")


@pytest.mark.parametrize(("changes", "error"), [
    ({"name": "a.b"}, ValueError), ({"key_type": float}, TypeError), ({"schemas": {}}, TypeError),
    ({"schemas": {1: {"required": {}}}}, TypeError), ({"actions": ("created", "snapshot")}, ValueError),
])
def test_bad_declarations_fail_at_import(changes, error):
    with pytest.raises(error):
        Aggregate(**{"name": "thing", "schemas": {1: Schema(required={"id": int})}, **changes})
    with pytest.raises(TypeError, match="not a JSON type"):
        Schema(required={"when": Decimal})


def test_schemas_per_version_and_a_key_only_delete(settings):
    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "AGGREGATES": [TICKET]}
    key = str(uuid.uuid4())
    payload_validate(event_type="ticket.updated", schema_version=1, payload={"id": key, "title": "t"})
    payload_validate(event_type="ticket.updated", schema_version=2, payload={"id": key, "title": "t", "seats": 2,
                                                                              "note": None})
    with pytest.raises(SchemaError) as refused:
        payload_validate(event_type="ticket.updated", schema_version=2, payload={"id": key, "title": "t"})
    assert refused.value.details == {"seats": "required"}
    payload_validate(event_type="ticket.deleted", schema_version=1, payload={"id": key})
    with pytest.raises(SchemaError):  # a UUID key travels as text
        payload_validate(event_type="ticket.deleted", schema_version=1, payload={"id": 7})
    for unknown in (("ticket.updated", 3), ("ticket.exploded", 1), ("product.updated", 1)):  # product: not listed
        with pytest.raises(SchemaError, match="no schema"):
            payload_validate(event_type=unknown[0], schema_version=unknown[1], payload={"id": key})


def test_bind_keeps_the_contract_and_changes_the_model():
    copy = TICKET.bind(model="keyed.TicketCopy", fields={"id": "ticket_id", "title": "heading"})
    assert (copy.schemas, copy.event_types, copy.id_field) == (TICKET.schemas, TICKET.event_types, "ticket_id")
    assert TICKET.id_field == "id" and TICKET.fields == {"id": "id"}


class ProductCardSerializer(serializers.ModelSerializer):
    class Meta:
        model = Product
        fields = ["id", "sku", "price"]


@pytest.mark.django_db
@pytest.mark.parametrize("snapshot", [ProductCardSerializer, "tests.strangler_sync.test_aggregates.product_card",
                                      lambda product: product_card(product)])
def test_snapshot_is_a_serializer_a_dotted_path_or_a_callable(settings, snapshot):
    card = events.PRODUCT.bind(snapshot=snapshot)
    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "AGGREGATES": [card]}
    product = Product.objects.create(sku="S-1", slug="s-1", name="S", price=Decimal("12.50"))
    assert aggregate_payload(aggregate_type="product", instance=product) == {"id": product.id, "sku": "S-1",
                                                                              "price": "12.50"}


def product_card(product: Product) -> dict:
    return {"id": product.id, "sku": product.sku, "price": str(product.price)}
