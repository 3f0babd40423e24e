"""Many events per broker message: the relay's grouping, and the consumer applying arrays exactly once."""

from __future__ import annotations

import json
import random
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from kombu import Producer

from monolith import events
from monolith.catalog.models import Product
from strangler_sync import metrics
from strangler_sync.broker import broker_connection, topology_declare
from strangler_sync.conf import sync_settings
from strangler_sync.consumer import SyncConsumer, event_parse
from strangler_sync.models import DeadLetter, InboxMessage, OutboxEvent
from strangler_sync.relay import ClaimedEvent, Relay, messages_group, relay_run
from strangler_sync.services import event_publish
from tests.strangler_sync.conftest import drain_queue, envelopes_of, product_payload
from tests.strangler_sync.test_consumer import envelope

# product events are published by hand here: product as an explicit aggregate (conftest.explicit_product)
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("explicit_product")]


@pytest.fixture(params=["embedded", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def broker(request, settings):
    """Each test on the embedded default broker (sqlite-queue://) and on the real RabbitMQ."""
    if request.param == "rabbitmq":
        request.getfixturevalue("on_rabbitmq")
    return request.param


@pytest.fixture
def subscribed(settings, broker):
    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "SUBSCRIBERS": {"sync.catalog": ["product.*"],
                                                                          "sync.stock": ["stock.*"]}}
    namespace = sync_settings().raw["NAMESPACE"]
    return {"catalog": f"{namespace}.sync.catalog", "stock": f"{namespace}.sync.stock"}


def _claimed(id_: int, routing_key: str) -> ClaimedEvent:
    return ClaimedEvent(id=id_, event_type="x", routing_key=routing_key, message_id=str(id_), correlation_id="",
                        body="{}")


def test_messages_group_by_routing_key_in_claim_order_and_cap_the_size():
    rows = [_claimed(1, "a"), _claimed(2, "b"), _claimed(3, "a"), _claimed(4, "a"), _claimed(5, "b")]
    grouped = [[r.id for r in message] for message in messages_group(rows=rows, per_message=2)]
    assert grouped == [[1, 3], [4], [2, 5]]
    assert [[r.id for r in m] for m in messages_group(rows=rows, per_message=1)] == [[1], [2], [3], [4], [5]]


def _emit_mixed() -> list[OutboxEvent]:
    """5 product.updated (ids 1..5), 2 product.created (6, 7) and 1 stock.changed, interleaved."""
    rows = []
    with transaction.atomic():
        for i in range(1, 6):
            rows.append(event_publish(event_type=events.PRODUCT_UPDATED, aggregate_type="product", aggregate_id=i,
                                      payload=product_payload(i)))
            if i == 2:
                rows.append(event_publish(event_type=events.STOCK_CHANGED, aggregate_type="stock", aggregate_id=1,
                                          payload={"product_id": 1, "quantity_on_hand": 5, "quantity_reserved": 0}))
            if i in (3, 4):
                rows.append(event_publish(event_type=events.PRODUCT_CREATED, aggregate_type="product",
                                          aggregate_id=i + 3, payload=product_payload(i + 3)))
    return rows


def test_relay_packs_each_routing_key_into_arrays_of_at_most_message_batch(settings, subscribed):
    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "MESSAGE_BATCH": 2}
    rows = _emit_mixed()
    assert relay_run(once=True) == len(rows) == 8
    assert OutboxEvent.objects.filter(status="published").count() == 8
    ids = {str(r.message_id): r.id for r in rows}
    bodies = {}
    for message in drain_queue(subscribed["catalog"]):
        key = message.delivery_info["routing_key"]
        body = message.payload
        events_in = body if isinstance(body, list) else [body]
        assert all(e["event_type"].endswith(key.split(".")[1]) for e in events_in)  # one routing key each
        assert isinstance(body, list) == (len(events_in) > 1)  # one event: the envelope object itself
        # claim (id) order inside a message
        bodies.setdefault(key, []).append([ids[e["message_id"]] for e in events_in])
    updated = sorted(bodies["product.updated"])
    assert [len(m) for m in sorted(updated, key=len, reverse=True)] == [2, 2, 1]
    assert all(m == sorted(m) for m in updated)
    assert sorted(i for m in updated for i in m) == sorted(r.id for r in rows if r.event_type == events.PRODUCT_UPDATED)
    assert [len(m) for m in bodies["product.created"]] == [2]
    [stock] = drain_queue(subscribed["stock"])
    assert isinstance(stock.payload, dict) and stock.payload["event_type"] == events.STOCK_CHANGED


def test_message_batch_1_sends_one_envelope_object_per_message(settings, subscribed):
    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "MESSAGE_BATCH": 1}
    rows = _emit_mixed()
    assert relay_run(once=True) == 8
    received = drain_queue(subscribed["catalog"]) + drain_queue(subscribed["stock"])
    assert len(received) == 8 and all(isinstance(m.payload, dict) for m in received)
    assert sorted(m.payload["message_id"] for m in received) == sorted(str(r.message_id) for r in rows)
    assert all(m.properties.get("message_id") == m.payload["message_id"] for m in received)


@pytest.mark.rabbitmq
def test_a_nacked_array_backs_off_every_row_it_carried(on_rabbitmq, settings):
    """A queue that rejects publishes (x-overflow=reject-publish, max length 0) makes RabbitMQ nack."""
    from kombu import Queue, binding

    from strangler_sync.broker import sync_exchange

    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "BACKOFF_BASE": 30.0, "SUBSCRIBERS": {}}
    config = sync_settings()
    full = Queue(f"{config.raw['NAMESPACE']}.full", exchange=sync_exchange(), durable=False, auto_delete=False,
                 bindings=[binding(sync_exchange(), routing_key="product.*")],
                 queue_arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    with broker_connection() as connection:
        channel = connection.channel()
        sync_exchange()(channel).declare()
        full(channel).declare()
    try:
        with transaction.atomic():
            rows = [event_publish(event_type=events.PRODUCT_UPDATED, aggregate_type="product", aggregate_id=i,
                                  payload=product_payload(i)) for i in range(1, 4)]
        relay = Relay()
        try:
            assert relay.publish_batch() == 0
            assert relay.confirms.published == 1  # the three rows went in one message
        finally:
            relay.close()
        for row in rows:
            row.refresh_from_db()
            assert (row.status, row.attempts, row.last_error) == ("pending", 1, "refused by the broker (nack)")
            assert row.next_attempt_at > timezone.now() + timedelta(seconds=10)
    finally:
        with broker_connection() as connection:
            connection.channel().queue_delete(full.name)


def _send(bodies: list) -> None:
    """Publish each body (a dict or a list of dicts) to this project's queue as the relay would."""
    config = sync_settings()
    with broker_connection() as connection:
        channel = connection.channel()
        topology_declare(channel=channel, include_own_queue=True)
        producer = Producer(channel)
        for body in bodies:
            producer.publish(json.dumps(body), exchange="", routing_key=config.queue, content_type="application/json",
                             content_encoding="utf-8", headers={"x-sync-attempts": 0})


def consume_all() -> SyncConsumer:
    with broker_connection() as connection:
        consumer = SyncConsumer(connection)
        consumer.drain(idle_seconds=0.6)
    return consumer


def test_consumer_applies_an_array(broker):
    queue = sync_settings().queue
    applied = metrics.CONSUMED.labels(queue, events.PRODUCT_CREATED, "applied")._value.get()
    _send([[envelope(i, 1, event_type=events.PRODUCT_CREATED, name=f"p{i}") for i in range(1, 6)]])
    consumer = consume_all()
    assert consumer.handled == 5  # counted per event
    assert metrics.CONSUMED.labels(queue, events.PRODUCT_CREATED, "applied")._value.get() == applied + 5
    assert sorted(Product.objects.values_list("id", "name")) == [(i, f"p{i}") for i in range(1, 6)]
    assert InboxMessage.objects.filter(outcome="applied").count() == 5
    assert drain_queue(queue) == []  # acked


def test_each_array_three_times_shuffled_applies_every_event_once(broker, swap_handler):
    from monolith.catalog.sync_handlers import product_follow

    calls = []

    def counting(*, event):
        calls.append(event.message_id)
        product_follow(event=event)

    for event_type in (events.PRODUCT_CREATED, events.PRODUCT_UPDATED):
        swap_handler(event_type, counting)
    rng = random.Random(20261129)
    history = [envelope(pid, 1, event_type=events.PRODUCT_CREATED) for pid in (1, 2, 3)]
    history += [envelope(pid, v, name=f"p{pid} v{v}") for v in range(2, 8) for pid in (1, 2, 3)]
    arrays = [history[start:start + 4] for start in range(0, len(history), 4)]
    deliveries = arrays * 3
    rng.shuffle(deliveries)
    _send(deliveries)
    consumer = consume_all()
    assert consumer.handled == 3 * len(history)
    assert len(calls) == len(set(calls))  # no event's handler ran twice
    assert InboxMessage.objects.count() == len(history)  # every event recorded once
    assert sorted(Product.objects.values_list("id", "name")) == [(1, "p1 v7"), (2, "p2 v7"), (3, "p3 v7")]
    assert drain_queue(sync_settings().queue) == [] and not DeadLetter.objects.exists()


@pytest.mark.parametrize("poison", ["unknown_type", "handler_error", "not_an_envelope"])
def test_a_poison_event_in_an_array_is_retried_alone_and_dead_lettered(broker, settings, swap_handler, poison):
    from monolith.catalog.sync_handlers import product_follow

    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "CONSUMER_MAX_ATTEMPTS": 3}
    config = sync_settings()
    array = [envelope(i, 1, event_type=events.PRODUCT_CREATED, name=f"p{i}") for i in range(1, 5)]
    if poison == "unknown_type":
        array[1]["event_type"] = "product.exploded"
    elif poison == "not_an_envelope":
        array[1] = {"hello": "world"}
    else:
        def explode_on_2(*, event):
            if event.aggregate_id == "2":
                raise RuntimeError("handler bug")
            product_follow(event=event)

        swap_handler(events.PRODUCT_CREATED, explode_on_2)
    _send([array])
    consume_all()
    assert sorted(Product.objects.values_list("id", flat=True)) == [1, 3, 4]  # the siblings applied
    [dead] = DeadLetter.objects.all()
    assert dead.attempts == 3
    assert json.loads(dead.body) == array[1]  # the poison event alone, not the array
    [parked] = drain_queue(config.dead_letter_queue)
    assert parked.payload == array[1]
    assert parked.headers["x-sync-attempts"] == 3 and parked.headers["x-sync-error"]
    assert drain_queue(config.queue) == []
    assert InboxMessage.objects.count() == 3


def test_mixed_single_and_array_traffic(broker):
    singles = [envelope(pid, 1, event_type=events.PRODUCT_CREATED) for pid in (1, 2, 3)]
    arrays = [[envelope(pid, v, name=f"p{pid} v{v}") for pid in (1, 2, 3)] for v in (2, 3)]
    later_single = envelope(2, 4, name="p2 v4")
    _send([*singles, arrays[0], later_single, arrays[1], singles[0], arrays[0]])  # the last two: redeliveries
    consume_all()
    assert sorted(Product.objects.values_list("id", "name")) == [(1, "p1 v3"), (2, "p2 v4"), (3, "p3 v3")]
    assert InboxMessage.objects.count() == 3 + 6 + 1
    assert drain_queue(sync_settings().queue) == [] and not DeadLetter.objects.exists()


def test_an_array_that_is_not_json_takes_the_malformed_path(broker, settings):
    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "CONSUMER_MAX_ATTEMPTS": 2}
    config = sync_settings()
    with broker_connection() as connection:
        channel = connection.channel()
        topology_declare(channel=channel, include_own_queue=True)
        Producer(channel).publish("[{not json", exchange="", routing_key=config.queue,
                                  content_type="application/json", content_encoding="utf-8")
    consume_all()
    [dead] = DeadLetter.objects.all()
    assert (dead.body, dead.attempts) == ("[{not json", 2)


def test_direct_backfill_messages_are_single_envelopes_the_consumer_accepts(settings):
    from strangler_sync.backfill import backfill_run
    from tests.strangler_sync.conftest import make_product

    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "SUBSCRIBERS": {"sync.catalog": ["product.*"]}}
    for i in range(1, 4):
        make_product(i)
    assert backfill_run(aggregate_type="product", batch_size=2, direct=True).emitted == 3
    received = drain_queue(next(iter(sync_settings().subscribers)))
    assert len(received) == 3 and all(isinstance(m.payload, dict) for m in received)
    assert sorted(event_parse(envelope=e).aggregate_id for e, _ in envelopes_of(received)) == ["1", "2", "3"]
