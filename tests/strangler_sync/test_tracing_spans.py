"""OpenTelemetry spans of the data plane (servicekit.tracing), in process with an in-memory exporter: the outbox
write, the relay's publish, the consumer's apply and the handler form one trace under the writer's span, on the
embedded broker and on RabbitMQ; the sampled flag is honoured; with tracing off nothing is recorded."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.test import override_settings
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from monolith import events
from servicekit.trace_context import TraceContext, current_trace, trace_continued, traceparent_parse
from servicekit.tracing import tracing_on, tracing_start, tracing_stop
from strangler_sync.conf import sync_settings
from strangler_sync.models import OutboxEvent
from strangler_sync.relay import relay_run
from strangler_sync.services import event_publish
from tests.strangler_sync.conftest import consume_all, product_payload

# product events published by hand: the storefront's product is captured by triggers otherwise
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("explicit_product")]

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
UNSAMPLED = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
TRACE_ID = int("4bf92f3577b34da6a3ce929d0e0e4736", 16)


@pytest.fixture(params=["embedded", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def broker(request, settings):
    if request.param == "rabbitmq":
        request.getfixturevalue("on_rabbitmq")
    return request.param


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    tracing_start(service_name="test", exporter=exporter, batch=False)
    yield exporter
    tracing_stop()


def follower() -> dict:
    """This project as a follower of the products it publishes: another origin, the catalog's queue."""
    config = sync_settings()
    return {**config.raw, "ORIGIN": "catalog", "QUEUE": "sync.catalog", "SUBSCRIPTIONS": ["product.*"]}


def write_relay_consume(traceparent: str | None, product_id: int = 1) -> tuple[OutboxEvent, TraceContext]:
    """Publish as a request continuing `traceparent` would, relay, consume as the follower."""
    with trace_continued(traceparent) as request:
        with transaction.atomic():
            row = event_publish(event_type=events.PRODUCT_UPDATED, aggregate_type="product", aggregate_id=product_id,
                                payload=product_payload(product_id, name="traced"))
    assert relay_run(once=True) == 1
    with override_settings(STRANGLER_SYNC=follower()):
        assert consume_all().handled == 1
    return row, request


def by_name(exporter) -> dict:
    finished = exporter.get_finished_spans()
    named = {span.name: span for span in finished}
    assert len(named) == len(finished), [span.name for span in finished]
    return named


def test_write_relay_apply_and_handler_are_one_trace_under_the_writer(broker, spans, swap_handler):
    seen = []
    swap_handler(events.PRODUCT_UPDATED, lambda *, event: seen.append(current_trace.get()))
    row, request = write_relay_consume(CALLER)
    named = by_name(spans)
    assert set(named) == {"outbox write product.updated", "relay publish product.updated",
                          "consume apply product.updated", "handle product.updated"}
    write, publish = named["outbox write product.updated"], named["relay publish product.updated"]
    apply, handle = named["consume apply product.updated"], named["handle product.updated"]
    assert {span.context.trace_id for span in named.values()} == {TRACE_ID}
    assert write.parent.span_id == int(request.span_id, 16)  # the request's span
    # the envelope carries the write's span: the relay's and the consumer's spans are its children
    assert traceparent_parse(row.traceparent).span_id == format(write.context.span_id, "016x")
    assert publish.parent.span_id == write.context.span_id and apply.parent.span_id == write.context.span_id
    assert handle.parent.span_id == apply.context.span_id
    assert [write.kind, publish.kind, apply.kind] == [SpanKind.PRODUCER, SpanKind.PRODUCER, SpanKind.CONSUMER]
    assert apply.attributes["strangler.outcome"] == "applied"
    assert apply.attributes["messaging.message.id"] == str(row.message_id)
    assert publish.attributes["messaging.destination.name"] == "product.updated"
    # the handler runs in its exported span (so do its log lines and any event it publishes)
    assert seen[0].span_id == format(handle.context.span_id, "016x")
    assert publish.start_time <= publish.end_time <= apply.end_time


def test_an_unsampled_write_records_nothing_and_still_syncs(spans, swap_handler):
    seen = []
    swap_handler(events.PRODUCT_UPDATED, lambda *, event: seen.append(event))
    row, _ = write_relay_consume(UNSAMPLED)
    assert spans.get_finished_spans() == ()
    assert traceparent_parse(row.traceparent).flags == "00"  # the decision travels with the event
    assert len(seen) == 1


def test_a_failing_handler_fails_its_spans(settings, spans, swap_handler):
    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "CONSUMER_MAX_ATTEMPTS": 1}

    def broken(*, event):
        raise RuntimeError("no")

    swap_handler(events.PRODUCT_UPDATED, broken)
    with trace_continued(CALLER):
        with transaction.atomic():
            event_publish(event_type=events.PRODUCT_UPDATED, aggregate_type="product", aggregate_id=1,
                          payload=product_payload(1))
    relay_run(once=True)
    with override_settings(STRANGLER_SYNC=follower()):
        consume_all()
    finished = spans.get_finished_spans()
    applies = [s for s in finished if s.name == "consume apply product.updated"]
    assert applies and all(s.status.status_code == StatusCode.ERROR for s in applies)
    handles = [s for s in finished if s.name == "handle product.updated"]
    assert len(handles) == 2 and handles[1].attributes["strangler.applied_alone"]  # the batch, then alone
    assert all(s.status.status_code == StatusCode.ERROR for s in handles)


def test_with_tracing_off_nothing_is_recorded_and_the_ids_still_flow(swap_handler):
    assert not tracing_on()
    seen = []
    swap_handler(events.PRODUCT_UPDATED, lambda *, event: seen.append(current_trace.get()))
    row, _ = write_relay_consume(CALLER)
    assert traceparent_parse(row.traceparent).trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert seen[0].trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
