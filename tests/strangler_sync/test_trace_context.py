"""The outbox envelope's optional ``traceparent``: written from the request's trace, published on both claim
paths, continued by the consumer on every apply path (bulk handlers included, with the correlation id), in logs."""

from __future__ import annotations

import io
import json
import logging
import uuid

import pytest
from django.db import transaction

from monolith import events
from servicekit.logging import JsonFormatter
from servicekit.request_id import RequestIdLogFilter, get_request_id
from servicekit.trace_context import TraceContextLogFilter, current_trace, trace_continued
from strangler_sync.consumer import APPLIED, event_parse, event_scope, inbox_apply, inbox_apply_batch
from strangler_sync.handlers import handler_unregister, sync_bulk_handler
from strangler_sync.models import OutboxEvent
from strangler_sync.relay import event_envelope, outbox_claim
from strangler_sync.services import event_publish
from tests.strangler_sync.conftest import T0, product_payload

# product events are published by hand here: product as an explicit aggregate (conftest.explicit_product)
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("explicit_product")]

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def publish(product_id: int) -> OutboxEvent:
    with transaction.atomic():
        return event_publish(event_type=events.PRODUCT_UPDATED, aggregate_type="product", aggregate_id=product_id,
                             payload=product_payload(product_id))


def review(review_id: int, *, traceparent: str | None = None, correlation_id: str = "") -> dict:
    body = {
        "message_id": str(uuid.uuid4()), "event_type": events.REVIEW_UPDATED, "aggregate_type": "review",
        "aggregate_id": str(review_id), "version": 1, "schema_version": 1,
        "payload": {"id": review_id, "product_id": 1, "rating": 4}, "occurred_at": T0.isoformat(),
        "origin": "reviews", "correlation_id": correlation_id,
    }
    if traceparent is not None:
        body["traceparent"] = traceparent
    return body


def test_both_claim_paths_publish_the_rows_traceparent_and_old_rows_keep_the_old_envelope():
    with trace_continued(CALLER) as context:
        traced = publish(1)
    untraced = publish(2)
    assert traced.traceparent == context.traceparent and untraced.traceparent == ""
    with transaction.atomic():
        claimed = {c.id: json.loads(c.body) for c in outbox_claim(limit=10)}
    assert claimed[traced.id]["traceparent"] == context.traceparent
    assert "traceparent" not in claimed[untraced.id]  # byte-for-byte the envelope old consumers know
    for row in (traced, untraced):
        assert claimed[row.id] == event_envelope(OutboxEvent.objects.get(id=row.id))


def test_the_consumer_applies_in_a_child_span_of_the_envelopes_trace(swap_handler):
    seen = []
    swap_handler(events.REVIEW_UPDATED, lambda *, event: seen.append((current_trace.get(), get_request_id())))
    assert inbox_apply(event=event_parse(envelope=review(1, traceparent=CALLER, correlation_id="req-1"))) == APPLIED
    with transaction.atomic():
        assert inbox_apply_batch(events=[event_parse(envelope=review(2, traceparent=CALLER))]) == [APPLIED]
    [(single, _), (batched, _)] = seen
    # inbox_apply is called by the consumer inside event_scope; the batch path sets it itself
    assert single is None
    assert batched.trace_id == TRACE_ID and batched.span_id != "00f067aa0ba902b7"
    assert current_trace.get() is None  # reset after the apply


@pytest.mark.parametrize("traceparent", [None, "", "garbage", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"])
def test_an_envelope_without_a_valid_traceparent_still_applies(swap_handler, traceparent):
    seen = []
    swap_handler(events.REVIEW_UPDATED, lambda *, event: seen.append(current_trace.get()))
    event = event_parse(envelope=review(3, traceparent=traceparent))
    assert event.traceparent == ""
    with transaction.atomic():
        assert inbox_apply_batch(events=[event]) == [APPLIED]
    assert seen == [None]


def test_bulk_handlers_run_in_the_shared_correlation_id_and_trace_of_their_events(swap_handler):
    other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    calls = []
    swap_handler(events.REVIEW_UPDATED, lambda *, event: None)

    def bulk(*, events):
        context = current_trace.get()
        calls.append((sorted(e.aggregate_id for e in events), get_request_id(), context and context.trace_id))

    sync_bulk_handler(events.REVIEW_UPDATED)(bulk)
    try:
        for batch in ([(1, CALLER, "req-a"), (2, CALLER, "req-a")], [(3, CALLER, "req-a"), (4, other, "req-b")]):
            with transaction.atomic():
                assert inbox_apply_batch(events=[event_parse(envelope=review(i, traceparent=trace, correlation_id=corr))
                                                 for i, trace, corr in batch]) == [APPLIED] * 2
    finally:
        handler_unregister(event_type=events.REVIEW_UPDATED)
    # one call per batch either way; the second batch's events came from two requests: no single id to run in
    assert calls == [(["1", "2"], "req-a", TRACE_ID), (["3", "4"], None, None)]


def test_json_logs_carry_the_trace_and_span_ids():
    """The handler logging_config builds: JSON formatter with the request-id and trace-context filters."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(service="test"))
    handler.addFilter(RequestIdLogFilter())
    handler.addFilter(TraceContextLogFilter())
    logger = logging.getLogger("tests.trace_context")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with event_scope(correlation_id="req-9", traceparent=CALLER):
            context = current_trace.get()
            logger.info("applied")
        logger.info("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (inside["request_id"], inside["trace_id"], inside["span_id"]) == ("req-9", TRACE_ID, context.span_id)
    assert (outside["trace_id"], outside["span_id"]) == (None, None)
