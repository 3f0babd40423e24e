"""Relay: publishes pending rows with routing keys and envelopes, backs off on broker failure, dead rows, requeue."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from monolith import events
from strangler_sync import metrics
from strangler_sync.broker import BrokerUnavailable
from strangler_sync.conf import sync_settings
from strangler_sync.models import OutboxEvent
from strangler_sync.relay import Relay, relay_run
from strangler_sync.services import event_publish, outbox_backoff_delay, outbox_cleanup, outbox_requeue
from tests.strangler_sync.conftest import drain_queue, envelopes_of, product_payload

# product events are published by hand here: product as an explicit aggregate (conftest.explicit_product)
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("explicit_product")]


@pytest.fixture
def subscribed(settings):
    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "SUBSCRIBERS": {"sync.catalog": ["product.*"],
                                                                          "sync.stock": ["stock.*"]}}
    config = sync_settings()
    return {"catalog": f"{config.raw['NAMESPACE']}.sync.catalog", "stock": f"{config.raw['NAMESPACE']}.sync.stock"}


def emit(n: int, *, aggregate_id: int | None = None, event_type: str = events.PRODUCT_UPDATED) -> list[OutboxEvent]:
    rows = []
    for i in range(n):
        product_id = aggregate_id or i + 1
        with transaction.atomic():
            rows.append(event_publish(event_type=event_type, aggregate_type="product", aggregate_id=product_id,
                                      payload=product_payload(product_id, name=f"v{i}")))
    return rows


def test_publishes_pending_rows_to_the_bound_queues_only(subscribed):
    rows = emit(3)
    with transaction.atomic():
        event_publish(event_type=events.STOCK_CHANGED, aggregate_type="stock", aggregate_id=1,
                      payload={"product_id": 1, "quantity_on_hand": 5, "quantity_reserved": 0})
    assert relay_run(once=True) == 4
    assert OutboxEvent.objects.filter(status="published").count() == 4
    received = envelopes_of(drain_queue(subscribed["catalog"]))
    # (the filesystem transport orders files by millisecond only; the consumer's version guard copes)
    assert sorted(e["message_id"] for e, _ in received) == sorted(str(r.message_id) for r in rows)
    first, message = next((e, m) for e, m in received if e["message_id"] == str(rows[0].message_id))
    assert message.delivery_info["routing_key"] == "product.updated"
    assert first["aggregate_type"] == "product" and first["version"] == 1
    assert first["payload"]["name"] == "v0"
    assert message.headers["x-sync-attempts"] == 0
    [stock] = drain_queue(subscribed["stock"])
    assert stock.delivery_info["routing_key"] == "stock.changed"


@pytest.mark.rabbitmq
def test_rabbitmq_batches_are_confirmed_then_marked(on_rabbitmq, subscribed, settings):
    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "BATCH_SIZE": 40}
    rows = emit(100)
    relay = Relay()
    try:
        assert relay.publish_batch() == 40
        # the broker confirmed the batch: 40 rows of one routing key, one message (MESSAGE_BATCH 100)
        assert relay.confirms is not None and relay.confirms.acked_upto == 1
        assert relay.drain() == 60
    finally:
        relay.close()
    assert OutboxEvent.objects.filter(status="published").count() == 100
    received = envelopes_of(drain_queue(subscribed["catalog"]))
    assert sorted(e["message_id"] for e, _ in received) == sorted(str(r.message_id) for r in rows)


def test_a_row_published_before_any_consumer_existed_is_not_lost(subscribed):
    """The relay declares the subscriber queues itself: nobody consumed yet, the message still waits."""
    emit(1)
    Relay().drain()
    assert len(drain_queue(subscribed["catalog"])) == 1


def test_broker_down_charges_no_attempt_and_keeps_rows_pending(settings, subscribed):
    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "BROKER_URL": "amqp://guest:guest@127.0.0.1:1//",
                               "BROKER_TRANSPORT_OPTIONS": {"connect_timeout": 0.5}}
    [row] = emit(1)
    failures = metrics.PUBLISH_FAILURES.labels("monolith")._value.get()
    with pytest.raises(BrokerUnavailable):
        Relay().publish_batch()
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("pending", 0)  # an outage is not the row's fault
    assert metrics.PUBLISH_FAILURES.labels("monolith")._value.get() == failures + 1
    assert Relay().drain() == 0  # the Celery task gives up quietly; the beat sweep retries


@pytest.mark.rabbitmq
def test_rows_the_broker_refuses_back_off_then_die_and_can_be_requeued(on_rabbitmq, subscribed, settings):
    """A queue that rejects publishes (x-overflow=reject-publish, max length 0) makes RabbitMQ nack."""
    from kombu import Queue, binding

    from strangler_sync.broker import broker_connection, sync_exchange

    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "MAX_ATTEMPTS": 2, "BACKOFF_BASE": 30.0}
    config = sync_settings()
    full = Queue(f"{config.raw['NAMESPACE']}.full", exchange=sync_exchange(), durable=False, auto_delete=False,
                 bindings=[binding(sync_exchange(), routing_key="product.*")],
                 queue_arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    with broker_connection() as connection:
        channel = connection.channel()
        sync_exchange()(channel).declare()
        full(channel).declare()
    try:
        [row] = emit(1)
        dead_before = metrics.DEAD_ROWS.labels("monolith")._value.get()
        relay = Relay()
        try:
            assert relay.publish_batch() == 0
            row.refresh_from_db()
            assert (row.status, row.attempts, row.last_error) == ("pending", 1, "refused by the broker (nack)")
            assert row.next_attempt_at > timezone.now() + timedelta(seconds=10)  # backoff: not retried at once
            assert relay.publish_batch() == 0  # not due yet: nothing claimed
            OutboxEvent.objects.update(next_attempt_at=timezone.now())
            assert relay.publish_batch() == 0
        finally:
            relay.close()
        row.refresh_from_db()
        assert (row.status, row.attempts) == ("dead", 2)
        assert metrics.DEAD_ROWS.labels("monolith")._value.get() == dead_before + 1
        assert outbox_requeue(event_ids=[row.id]) == 1
        row.refresh_from_db()
        assert (row.status, row.attempts, row.last_error) == ("pending", 0, "")
    finally:
        with broker_connection() as connection:
            connection.channel().queue_delete(full.name)


def test_backoff_is_exponential_with_jitter_and_capped(settings):
    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "BACKOFF_BASE": 1.0, "BACKOFF_MAX": 10.0}
    for attempts, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (12, 10.0)]:
        delays = {outbox_backoff_delay(attempts=attempts) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered


def test_cleanup_deletes_only_old_published_rows(subscribed):
    old, recent, pending = emit(3)
    OutboxEvent.objects.filter(id__in=[old.id, recent.id]).update(status="published", published_at=timezone.now())
    OutboxEvent.objects.filter(id=old.id).update(published_at=timezone.now() - timedelta(days=30))
    assert outbox_cleanup() == 1
    assert sorted(OutboxEvent.objects.values_list("id", flat=True)) == [recent.id, pending.id]


@pytest.mark.postgres
@pytest.mark.slow
def test_concurrent_relays_never_publish_a_row_twice(settings, subscribed):
    """Four relays share one outbox on PostgreSQL (SKIP LOCKED): every row is published exactly once."""
    assert connection.vendor == "postgresql"
    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "BATCH_SIZE": 25}
    OutboxEvent.objects.bulk_create(
        [OutboxEvent(event_type=events.PRODUCT_UPDATED, aggregate_type="product", aggregate_id=str(i), version=1,
                     payload=product_payload(i), occurred_at=timezone.now(), origin="monolith",
                     next_attempt_at=timezone.now()) for i in range(1, 801)]
    )
    counts = []

    def run():
        try:
            counts.append(relay_run(once=True))
        finally:
            from django.db import connection as thread_connection

            thread_connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sum(counts) == 800
    assert len([c for c in counts if c > 0]) >= 2  # they really ran side by side
    ids = [e["message_id"] for e, _ in envelopes_of(drain_queue(subscribed["catalog"]))]
    assert len(ids) == 800 and len(set(ids)) == 800
    assert OutboxEvent.objects.filter(status="published").count() == 800


def test_beat_tasks_sweep_and_clean_up(subscribed):
    from strangler_sync.consumer import inbox_cleanup
    from strangler_sync.tasks import cleanup, relay_sweep

    emit(2)
    assert relay_sweep() == 2  # what on_commit missed is published by the periodic sweep
    OutboxEvent.objects.update(published_at=timezone.now() - timedelta(days=30))
    assert cleanup() == {"outbox_deleted": 2, "inbox_deleted": 0}
    assert inbox_cleanup() == 0


def test_a_claimed_row_is_published_with_the_envelope_of_its_row(subscribed):
    """outbox_claim builds the JSON itself (on PostgreSQL from the stored payload text): same envelope."""
    from strangler_sync.relay import event_envelope, outbox_claim

    rows = emit(2) + emit(1, aggregate_id=7, event_type=events.PRODUCT_CREATED)
    OutboxEvent.objects.filter(id=rows[1].id).update(status="published")
    OutboxEvent.objects.filter(id=rows[0].id).update(correlation_id="req-1", payload={
        **rows[0].payload, "name": "Ünïcode \"quoted\" \\ name", "images": ["/a.png"]})
    with transaction.atomic():
        claimed = outbox_claim(limit=10)
    assert [c.id for c in claimed] == [rows[0].id, rows[2].id]  # pending only, oldest first
    for item in claimed:
        row = OutboxEvent.objects.get(id=item.id)
        assert json.loads(item.body) == event_envelope(row)
        assert (item.message_id, item.correlation_id, item.routing_key) == (
            str(row.message_id), row.correlation_id, f"product.{row.event_type.rsplit('.', 1)[-1]}")
