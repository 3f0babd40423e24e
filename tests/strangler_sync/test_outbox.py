"""Outbox: atomic with the write, per-aggregate versions, schema checks, correlation ids, on_commit trigger."""

from __future__ import annotations

import pytest
from django.db import transaction

from monolith import events
from monolith.celery import app as celery_app
from servicekit.request_id import current_request_id
from strangler_sync.broker import broker_connection, topology_declare
from strangler_sync.conf import sync_settings
from strangler_sync.errors import NotInTransaction, SchemaError
from strangler_sync.handlers import SyncEvent, applying_synced_event
from strangler_sync.models import AggregateVersion, AppliedVersion, OutboxEvent
from strangler_sync.services import event_publish
from tests.strangler_sync.conftest import T0, drain_queue, make_product, product_payload

# product events are published by hand here: product as an explicit aggregate (conftest.explicit_product)
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("explicit_product")]


def publish_product(product_id: int, **changes) -> OutboxEvent:
    with transaction.atomic():
        return event_publish(event_type=events.PRODUCT_UPDATED, aggregate_type="product", aggregate_id=product_id,
                             payload=product_payload(product_id, **changes))


def test_outside_a_transaction_is_refused():
    with pytest.raises(NotInTransaction):
        event_publish(event_type=events.PRODUCT_UPDATED, aggregate_type="product", aggregate_id=1,
                      payload=product_payload(1))
    assert OutboxEvent.objects.count() == 0


def test_rollback_leaves_no_event_and_no_version():
    with pytest.raises(RuntimeError), transaction.atomic():
        make_product(7)
        event_publish(event_type=events.PRODUCT_CREATED, aggregate_type="product", aggregate_id=7,
                      payload=product_payload(7))
        raise RuntimeError("the write failed after the event was recorded")
    assert OutboxEvent.objects.count() == 0
    assert AggregateVersion.objects.count() == 0


def test_commit_keeps_write_and_event_together():
    with transaction.atomic():
        product = make_product(8)
        event = event_publish(event_type=events.PRODUCT_CREATED, aggregate_type="product", aggregate_id=product.id,
                              payload=product_payload(8))
    stored = OutboxEvent.objects.get()
    assert stored.id == event.id
    assert (stored.status, stored.version, stored.aggregate_id, stored.origin) == ("pending", 1, "8", "monolith")


def test_versions_increase_per_aggregate():
    versions = [publish_product(1).version, publish_product(1).version, publish_product(2).version,
                publish_product(1).version]
    assert versions == [1, 2, 1, 3]
    assert AggregateVersion.objects.get(aggregate_type="product", aggregate_id="1").version == 3


def test_after_a_flip_the_new_owner_numbers_above_what_it_applied():
    """The monolith followed the service up to v5 (or had issued v2 itself before): its next event is v6."""
    AppliedVersion.objects.create(aggregate_type="product", aggregate_id="1", version=5)
    assert publish_product(1).version == 6  # no version row yet
    AggregateVersion.objects.create(aggregate_type="product", aggregate_id="2", version=2)
    AppliedVersion.objects.create(aggregate_type="product", aggregate_id="2", version=9)
    assert publish_product(2).version == 10  # a stale own counter is lifted
    AppliedVersion.objects.create(aggregate_type="product", aggregate_id="3", version=1)
    assert [publish_product(3).version, publish_product(3).version] == [2, 3]  # then plain +1


def test_invalid_payload_is_refused_before_anything_is_written():
    with pytest.raises(SchemaError) as caught:
        publish_product(1, price=10)  # prices travel as decimal strings
    assert caught.value.details == {"price": "expected str"}
    with pytest.raises(SchemaError):
        with transaction.atomic():
            event_publish(event_type="product.renamed", aggregate_type="product", aggregate_id=1, payload={"id": 1})
    assert OutboxEvent.objects.count() == 0


def test_correlation_id_is_the_current_request_id():
    token = current_request_id.set("req-abc-123")
    try:
        event = publish_product(3)
    finally:
        current_request_id.reset(token)
    assert event.correlation_id == "req-abc-123"


def test_no_event_while_applying_a_synced_event():
    synced = SyncEvent(message_id="m", event_type=events.PRODUCT_UPDATED, aggregate_type="product",
                       aggregate_id="4", version=9, schema_version=1, payload=product_payload(4), occurred_at=T0,
                       origin="catalog", correlation_id="")
    with applying_synced_event(synced):
        assert publish_product(4) is None
    assert OutboxEvent.objects.count() == 0


def test_commit_triggers_the_relay_task(settings):
    """RELAY_TRIGGER=celery: on commit the relay task runs (eagerly here) and the event reaches the queue."""
    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "RELAY_TRIGGER": "celery",
                               "SUBSCRIBERS": {"sync.catalog": ["product.*"]}}
    config = sync_settings()
    with broker_connection() as connection:
        topology_declare(channel=connection.channel())
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        event = publish_product(5)
    finally:
        celery_app.conf.task_always_eager = eager
    event.refresh_from_db()
    assert event.status == OutboxEvent.Status.PUBLISHED
    [message] = drain_queue(f"{config.raw['NAMESPACE']}.sync.catalog")
    assert message.payload["message_id"] == str(event.message_id)
