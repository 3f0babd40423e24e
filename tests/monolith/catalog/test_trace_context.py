"""W3C traceparent: a write continues the caller's trace (or starts one) and its outbox row carries it."""

from __future__ import annotations

import pytest

from servicekit.trace_context import traceparent_parse
from strangler_sync.models import OutboxEvent

pytestmark = pytest.mark.django_db

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_write_continues_the_callers_trace_into_its_outbox_row(staff_api, shelf):
    lamp = shelf["lamp"]
    response = staff_api.patch(f"/api/products/{lamp.id}/", {"price": "11.00"}, format="json", HTTP_TRACEPARENT=CALLER)
    assert response.status_code == 200
    answered = traceparent_parse(response["traceparent"])
    assert answered.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert answered.span_id != "00f067aa0ba902b7"  # the monolith's own span, a child of the caller's
    row = OutboxEvent.objects.get(aggregate_type="product", aggregate_id=str(lamp.id), event_type__endswith="updated")
    assert row.traceparent == answered.traceparent


@pytest.mark.parametrize("header", [None, "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                                    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"])
def test_a_write_without_a_valid_traceparent_starts_a_trace(staff_api, shelf, header):
    lamp = shelf["lamp"]
    extra = {"HTTP_TRACEPARENT": header} if header else {}
    response = staff_api.patch(f"/api/products/{lamp.id}/", {"price": "12.00"}, format="json", **extra)
    assert response.status_code == 200
    started = traceparent_parse(response["traceparent"])
    assert started is not None and started.trace_id != "4bf92f3577b34da6a3ce929d0e0e4736"
    assert OutboxEvent.objects.get(aggregate_id=str(lamp.id), event_type__endswith="updated").traceparent == \
        started.traceparent
