"""Relays and consumers retry broker outages, but stop with the reason on anything retrying cannot fix.

The error used is real: a broker URL whose kombu transport cannot load here (kombu's redis transport without the
redis library fails on import, with ImportError or AttributeError depending on kombu's version). Before, the
relay counted any exception as "broker unavailable" and retried it forever.
"""

from __future__ import annotations

import importlib.util
import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction

from monolith import events
from strangler_sync.broker import BrokerRefused, BrokerUnavailable, broker_connection, broker_outage
from strangler_sync.conf import sync_settings
from strangler_sync.consumer import SyncConsumer
from strangler_sync.models import OutboxEvent
from strangler_sync.relay import relay_run
from strangler_sync.services import event_publish
from tests.strangler_sync.conftest import product_payload

# product events are published by hand here: product as an explicit aggregate (conftest.explicit_product)
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("explicit_product")]

UNLOADABLE_BROKER = "redis://127.0.0.1:1/0"
GIVE_UP_AFTER = 60.0  # seconds: only reached when the loop retries the error instead of stopping


@pytest.fixture
def unloadable_broker(settings):
    if importlib.util.find_spec("redis") is not None:
        pytest.skip("the redis library is installed here, so kombu's redis transport loads")
    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "BROKER_URL": UNLOADABLE_BROKER,
                               "BROKER_TRANSPORT_OPTIONS": {}}
    return settings


def emit_one() -> OutboxEvent:
    with transaction.atomic():
        return event_publish(event_type=events.PRODUCT_UPDATED, aggregate_type="product", aggregate_id=1,
                             payload=product_payload(1))


def test_the_relay_loop_stops_on_an_error_that_is_not_an_outage(unloadable_broker):
    row = emit_one()
    stop = threading.Event()
    timer = threading.Timer(GIVE_UP_AFTER, stop.set)
    timer.start()
    try:
        with pytest.raises(Exception) as caught:
            relay_run(stop=stop)
    finally:
        timer.cancel()
    assert not stop.is_set(), "the relay retried until the test stopped it"
    assert not isinstance(caught.value, BrokerUnavailable) and not broker_outage(caught.value)
    assert "redis" in str(caught.value).lower()
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("pending", 0)  # the batch rolled back: nothing lost, nothing charged


def test_sync_relay_exits_with_the_reason(unloadable_broker):
    emit_one()
    with pytest.raises(CommandError, match=r"^relay stopped: (ImportError|AttributeError): .*[Rr]edis"):
        call_command("sync_relay")


def test_sync_consume_exits_with_the_reason(unloadable_broker):
    with pytest.raises(CommandError, match=r"^consumer stopped: (ImportError|AttributeError): .*[Rr]edis"):
        call_command("sync_consume")


def test_outages_are_told_apart_from_refusals_and_bugs():
    import amqp.exceptions
    from kombu.exceptions import ChannelError, OperationalError

    for outage in (ConnectionRefusedError(111, "refused"), TimeoutError("confirm"), OperationalError("lost"),
                   amqp.exceptions.ConnectionForced("broker restart"), ChannelError("Cannot add file")):
        assert broker_outage(outage), outage
    for fatal in (AttributeError("_exchange_file"), ImportError("redis"), TypeError("bad call"),
                  amqp.exceptions.AccessRefused("login refused"), amqp.exceptions.PreconditionFailed("args")):
        assert not broker_outage(fatal), fatal


@pytest.mark.rabbitmq
def test_a_consumer_whose_queue_declaration_rabbitmq_refuses_stops(on_rabbitmq):
    """kombu's ConsumerMixin reconnects forever on channel errors; a 406 PRECONDITION_FAILED never heals."""
    from kombu import Queue

    config = sync_settings()
    with broker_connection() as connection:  # the consumer's queue, declared with other arguments first
        Queue(config.queue, durable=False, auto_delete=False)(connection.channel()).declare()
    with broker_connection() as connection:
        consumer = SyncConsumer(connection)
        timer = threading.Timer(GIVE_UP_AFTER, lambda: setattr(consumer, "should_stop", True))
        timer.start()
        try:
            with pytest.raises(BrokerRefused, match="PreconditionFailed"):
                consumer.run()
        finally:
            timer.cancel()
        assert not consumer.should_stop, "the consumer retried until the test stopped it"
