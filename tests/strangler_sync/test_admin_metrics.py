"""Admin (dead rows visible, requeue action; inbox, dead letters) and the outbox gauges."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.utils import timezone

from monolith import events
from strangler_sync import metrics
from strangler_sync.models import DeadLetter, InboxMessage, OutboxEvent
from strangler_sync.relay import relay_gauges_update
from strangler_sync.services import event_publish
from tests.strangler_sync.conftest import T0, product_payload

# product events are published by hand here: product as an explicit aggregate (conftest.explicit_product)
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("explicit_product")]


def _outbox(n: int) -> list[OutboxEvent]:
    with transaction.atomic():
        return [event_publish(event_type=events.PRODUCT_UPDATED, aggregate_type="product", aggregate_id=i,
                              payload=product_payload(i)) for i in range(1, n + 1)]


def test_dead_rows_are_listed_and_requeued_from_the_admin(admin_client):
    dead, pending = _outbox(2)
    OutboxEvent.objects.filter(id=dead.id).update(status="dead", attempts=8, last_error="ConnectionRefusedError")
    page = admin_client.get("/admin/strangler_sync/outboxevent/?status__exact=dead")
    assert page.status_code == 200
    assert b"ConnectionRefusedError" in page.content
    response = admin_client.post("/admin/strangler_sync/outboxevent/",
                                 {"action": "requeue", "_selected_action": [dead.id]}, follow=True)
    assert b"1 event(s) requeued." in response.content
    dead.refresh_from_db()
    assert (dead.status, dead.attempts, dead.last_error) == ("pending", 0, "")


def test_inbox_and_dead_letters_are_visible(admin_client):
    InboxMessage.objects.create(message_id="6f1c2a44-6d2f-4c43-9d36-0b7f0b1e2a11", event_type="product.updated",
                                aggregate_type="product", aggregate_id="1", version=1, origin="catalog",
                                outcome="applied", occurred_at=T0)
    DeadLetter.objects.create(queue="sync.monolith", body="{bad", error="undecodable: boom", attempts=5)
    assert b"6f1c2a44" in admin_client.get("/admin/strangler_sync/inboxmessage/").content
    assert b"undecodable: boom" in admin_client.get("/admin/strangler_sync/deadletter/").content


def test_gauges_report_backlog_age_and_dead_rows():
    first, second, third = _outbox(3)
    OutboxEvent.objects.filter(id=first.id).update(occurred_at=timezone.now() - timezone.timedelta(seconds=90))
    OutboxEvent.objects.filter(id=third.id).update(status="dead")
    relay_gauges_update()
    assert metrics.OUTBOX_BACKLOG.labels("monolith")._value.get() == 2
    assert metrics.OUTBOX_DEAD.labels("monolith")._value.get() == 1
    assert metrics.OUTBOX_OLDEST_PENDING_AGE.labels("monolith")._value.get() >= 90


def test_metrics_endpoint_exposes_the_sync_metrics(client):
    body = client.get("/metrics").content.decode()
    for name in ("strangler_sync_outbox_backlog", "strangler_sync_end_to_end_lag_seconds",
                 "strangler_sync_consumed_total", "strangler_sync_published_total"):
        assert name in body
