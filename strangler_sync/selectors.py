"""Reads of the data plane: outbox statistics (metrics, admin, tests)."""

from __future__ import annotations

from django.db.models import Count, Min
from django.utils import timezone

from strangler_sync.models import OutboxEvent


def outbox_stats() -> dict:
    counts = dict(OutboxEvent.objects.values_list("status").annotate(n=Count("id")).order_by())
    oldest = OutboxEvent.objects.filter(status=OutboxEvent.Status.PENDING).aggregate(t=Min("occurred_at"))["t"]
    return {
        "pending": counts.get(OutboxEvent.Status.PENDING, 0),
        "published": counts.get(OutboxEvent.Status.PUBLISHED, 0),
        "dead": counts.get(OutboxEvent.Status.DEAD, 0),
        "oldest_pending_age_seconds": (timezone.now() - oldest).total_seconds() if oldest else 0.0,
    }
