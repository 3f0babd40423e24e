"""Inbox: exactly-once per message_id, version guard, shuffled redelivery, dead letters, correlation ids, lag."""

from __future__ import annotations

import json
import random
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone
from kombu import Producer

from monolith import events
from monolith.catalog.models import Product
from servicekit.request_id import get_request_id
from strangler_sync import metrics
from strangler_sync.broker import broker_connection, topology_declare
from strangler_sync.conf import sync_settings
from strangler_sync.consumer import (
    APPLIED,
    DUPLICATE,
    OWN,
    STALE,
    SyncConsumer,
    UnknownEventType,
    event_parse,
    inbox_apply,
    inbox_apply_batch,
)
from strangler_sync.errors import SchemaError
from strangler_sync.models import AppliedVersion, DeadLetter, InboxMessage
from tests.strangler_sync.conftest import T0, consume_all, drain_queue, product_payload

pytestmark = pytest.mark.django_db(transaction=True)


def envelope(product_id: int, version: int, *, event_type: str = events.PRODUCT_UPDATED, origin: str = "catalog",
             message_id: str | None = None, **changes) -> dict:
    payload = {"id": product_id} if event_type == events.PRODUCT_DELETED else product_payload(product_id, **changes)
    return {
        "message_id": message_id or str(uuid.uuid4()), "event_type": event_type, "aggregate_type": "product",
        "aggregate_id": str(product_id), "version": version, "schema_version": 1, "payload": payload,
        "occurred_at": T0.isoformat(), "origin": origin, "correlation_id": f"corr-{product_id}-{version}",
    }


def apply(body: dict) -> str:
    return inbox_apply(event=event_parse(envelope=body))


def test_applied_then_duplicate_then_stale():
    first = envelope(1, 1, event_type=events.PRODUCT_CREATED, name="first")
    assert apply(first) == APPLIED
    assert apply(first) == DUPLICATE
    assert apply(envelope(1, 2, name="second")) == APPLIED
    assert apply(envelope(1, 1, name="older, other message")) == STALE
    assert apply(envelope(1, 2, name="same version again")) == STALE
    product = Product.objects.get(id=1)
    assert product.name == "second"
    assert product.updated_at == T0  # the owner's timestamp, not the follower's clock
    assert AppliedVersion.objects.get(aggregate_type="product", aggregate_id="1").version == 2
    assert InboxMessage.objects.filter(outcome="applied").count() == 2
    assert InboxMessage.objects.filter(outcome="stale").count() == 2


def test_own_events_are_ignored():
    assert apply(envelope(1, 1, origin="monolith")) == OWN
    assert not Product.objects.exists() and not InboxMessage.objects.exists()


def test_every_message_three_times_shuffled_gives_the_in_order_result():
    rng = random.Random(20261129)
    history = []
    for product_id in (1, 2, 3):
        history.append(envelope(product_id, 1, event_type=events.PRODUCT_CREATED, price="1.00"))
        for version in range(2, 7):
            history.append(envelope(product_id, version, price=f"{version}.00", name=f"p{product_id} v{version}"))
    history.append(envelope(3, 7, event_type=events.PRODUCT_DELETED))
    deliveries = history * 3
    rng.shuffle(deliveries)
    outcomes = [apply(body) for body in deliveries]
    assert outcomes.count(DUPLICATE) == 2 * len(history)  # every message id recorded once
    assert InboxMessage.objects.count() == len(history)
    assert sorted(Product.objects.values_list("id", "price", "name")) == [
        (1, Decimal("6.00"), "p1 v6"), (2, Decimal("6.00"), "p2 v6"),
    ]
    assert dict(AppliedVersion.objects.values_list("aggregate_id", "version")) == {"1": 6, "2": 6, "3": 7}


def test_batches_give_the_same_result_as_one_by_one():
    """inbox_apply_batch (what sync_consume uses) on 3x shuffled deliveries, in batches of 7."""
    rng = random.Random(5)
    history = [envelope(pid, 1, event_type=events.PRODUCT_CREATED) for pid in (1, 2)]
    history += [envelope(pid, v, name=f"p{pid} v{v}") for pid in (1, 2) for v in range(2, 6)]
    deliveries = history * 3
    rng.shuffle(deliveries)
    outcomes = []
    for start in range(0, len(deliveries), 7):
        with transaction.atomic():
            outcomes += inbox_apply_batch(events=[event_parse(envelope=b) for b in deliveries[start:start + 7]])
    assert outcomes.count(DUPLICATE) == 2 * len(history)
    assert outcomes.count(APPLIED) + outcomes.count(STALE) == len(history)
    assert InboxMessage.objects.count() == len(history)
    assert sorted(Product.objects.values_list("id", "name")) == [(1, "p1 v5"), (2, "p2 v5")]
    assert dict(AppliedVersion.objects.values_list("aggregate_id", "version")) == {"1": 5, "2": 5}


def test_malformed_and_unknown_messages_are_refused(swap_handler):
    swap_handler(events.REVIEW_CREATED, None)
    with pytest.raises(SchemaError):
        event_parse(envelope={"event_type": events.PRODUCT_UPDATED})
    with pytest.raises(SchemaError):
        event_parse(envelope=envelope(1, 1, price=3))
    with pytest.raises(SchemaError):
        event_parse(envelope=["not", "an", "object"])
    unknown = envelope(1, 1)
    unknown["event_type"] = events.REVIEW_CREATED
    unknown["payload"] = {"id": 1, "product_id": 1, "rating": 5}
    with pytest.raises(UnknownEventType):  # valid schema, but this project registered no handler for it
        apply(unknown)
    assert not InboxMessage.objects.exists()


def test_a_failing_handler_rolls_back_everything(swap_handler):
    def explode(*, event):
        Product.objects.create(sku="X", slug="x", name="half-applied", price=1)
        raise RuntimeError("handler bug")

    swap_handler(events.REVIEW_CREATED, explode)

    body = envelope(1, 1)
    body.update(event_type=events.REVIEW_CREATED, aggregate_type="review",
                payload={"id": 1, "product_id": 1, "rating": 5})
    with pytest.raises(RuntimeError):
        apply(body)
    assert not Product.objects.exists()
    assert not InboxMessage.objects.exists()
    assert AppliedVersion.objects.filter(version__gt=0).count() == 0


def _send(bodies: list, *, raw: bool = False) -> None:
    config = sync_settings()
    with broker_connection() as connection:
        channel = connection.channel()
        topology_declare(channel=channel, include_own_queue=True)
        producer = Producer(channel)
        for body in bodies:
            if raw:
                producer.publish(body, exchange="", routing_key=config.queue, content_type="application/json",
                                 content_encoding="utf-8")
            else:
                producer.publish(body, exchange="", routing_key=config.queue, serializer="json")


def test_consumer_retries_then_dead_letters_with_the_error(settings):
    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "CONSUMER_MAX_ATTEMPTS": 3}
    config = sync_settings()
    unknown = envelope(2, 1)
    unknown["event_type"] = "product.exploded"
    _send([envelope(1, 1, event_type=events.PRODUCT_CREATED), unknown])
    _send(["{this is not json"], raw=True)
    consume_all()
    assert Product.objects.filter(id=1).exists()  # the good one was applied
    dead = {d.event_type: d for d in DeadLetter.objects.all()}
    assert set(dead) == {"product.exploded", ""}
    assert all(d.attempts == 3 for d in dead.values())
    assert "no schema" in dead["product.exploded"].error
    assert dead[""].body == "{this is not json"
    parked = drain_queue(config.dead_letter_queue)
    assert len(parked) == 2
    assert all(m.headers["x-sync-attempts"] == 3 and m.headers["x-sync-error"] for m in parked)
    assert {m.body.decode() if isinstance(m.body, bytes) else m.body for m in parked} >= {"{this is not json"}
    assert json.loads(next(m.body for m in parked if b"exploded" in m.body))["event_type"] == "product.exploded"
    assert drain_queue(config.queue) == []  # nothing left behind


def test_consumer_applies_with_the_correlation_id_and_observes_lag(swap_handler):
    seen = []

    def record(*, event):
        seen.append(get_request_id())

    swap_handler(events.REVIEW_UPDATED, record)
    body = envelope(5, 1)
    body.update(event_type=events.REVIEW_UPDATED, aggregate_type="review", payload={"id": 5, "product_id": 1,
                                                                                     "rating": 4},
                occurred_at=(timezone.now() - timedelta(seconds=2)).isoformat())
    queue = sync_settings().queue
    lag_count = metrics.LAG.labels(queue)._sum.get()
    applied = metrics.CONSUMED.labels(queue, events.REVIEW_UPDATED, "applied")._value.get()
    _send([body, body])  # the second copy is a duplicate
    consumer = consume_all()
    assert seen == ["corr-5-1"]
    assert consumer.handled == 2
    assert metrics.LAG.labels(queue)._sum.get() - lag_count >= 2.0
    assert metrics.CONSUMED.labels(queue, events.REVIEW_UPDATED, "applied")._value.get() == applied + 1
    assert metrics.CONSUMED.labels(queue, events.REVIEW_UPDATED, "duplicate")._value.get() >= 1


def test_the_monolith_follows_category_events_after_a_flip():
    from monolith.catalog.models import Category

    def category(version: int, event_type: str, **payload) -> dict:
        body = envelope(9, version, event_type=event_type)
        body.update(aggregate_type="category", payload={"id": 9, "name": "Tools", "slug": "tools", "parent_id": None,
                                                        "description": "", **payload})
        return body

    assert apply(category(1, events.CATEGORY_CREATED)) == APPLIED
    assert apply(envelope(1, 1, event_type=events.PRODUCT_CREATED, category_id=9)) == APPLIED
    assert apply(category(2, events.CATEGORY_UPDATED, name="Hand tools")) == APPLIED
    assert Category.objects.get(id=9).name == "Hand tools"
    deleted = envelope(9, 3, event_type=events.PRODUCT_DELETED)
    deleted.update(event_type=events.CATEGORY_DELETED, aggregate_type="category")
    assert apply(deleted) == APPLIED
    assert not Category.objects.filter(id=9).exists()
    assert Product.objects.get(id=1).category_id is None  # SET_NULL, as on the owner


def test_an_undecodable_message_is_failed_in_flush_not_inside_its_delivery():
    """Failing it inside the delivery could nest in another _fail's confirm wait and take that publish's confirm."""

    class Undecodable:
        body, headers, content_type, content_encoding = b"\xff not json", {}, "application/json", "binary"

    with broker_connection() as connection:
        consumer = SyncConsumer(connection)
        failed = []
        consumer._fail = lambda message, **details: failed.append((message, details))
        message = Undecodable()
        consumer.on_decode_error(message, ValueError("bad byte"))
        assert failed == [] and len(consumer._pending) == 1  # only buffered, like any delivery
        consumer.flush()
    assert failed == [(message, {"body_text": "\ufffd not json", "event_type": "", "message_id": "",
                                 "error": "undecodable: bad byte"})]


@pytest.mark.postgres
def test_batch_statements_do_not_grow_with_the_batch_on_postgresql():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def statements(first: int, n: int) -> int:
        bodies = [envelope(p, 1, event_type=events.PRODUCT_CREATED) for p in range(first, first + n)]
        with CaptureQueriesContext(connection) as queries, transaction.atomic():
            outcomes = inbox_apply_batch(events=[event_parse(envelope=b) for b in bodies])
        assert outcomes == [APPLIED] * n
        return len([q for q in queries.captured_queries if "strangler_sync_" in q["sql"]])

    assert statements(1, 5) == statements(100, 150) == 2  # versions locked and read; inbox + versions written


@pytest.mark.postgres
def test_an_inbox_row_above_the_applied_version_sends_the_batch_to_the_per_event_path():
    """Cannot happen through the consumer (both rows commit together); if it does, nothing is applied twice."""
    body = envelope(1, 3, event_type=events.PRODUCT_CREATED)
    InboxMessage.objects.create(message_id=body["message_id"], event_type=body["event_type"], aggregate_type="product",
                                aggregate_id="1", version=3, origin="catalog", outcome="applied", occurred_at=T0)
    from strangler_sync.consumer import InboxConflict

    with pytest.raises(InboxConflict), transaction.atomic():
        inbox_apply_batch(events=[event_parse(envelope=body), event_parse(envelope=envelope(2, 1))])
    assert InboxMessage.objects.count() == 1 and not AppliedVersion.objects.filter(version__gt=0).exists()
    assert apply(body) == DUPLICATE  # what SyncConsumer.flush falls back to
