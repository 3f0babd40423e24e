"""Relay state endpoint (``/sync/relay/``): how far this project's outbox is behind, for gates and dashboards.

The control plane reads it over HTTP from each project's own base URL, so it needs no project code, settings
or database credentials. Polled every second by ``plan advance --wait``, so it stays cheap with millions of
published rows kept for retention: pending and dead rows are counted through the status indexes, never the
whole table. ``?published=1`` adds the exact count of retained published rows (a scan of them: occasional use).
"""

from __future__ import annotations

from django.db.models import Count, Min
from django.utils import timezone
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from strangler_sync.conf import sync_settings
from strangler_sync.models import DeadLetter, OutboxEvent


class RelayStateSerializer(serializers.Serializer):
    """The answer's shape (for the OpenAPI schema)."""

    project = serializers.CharField()
    backlog = serializers.IntegerField(help_text="outbox rows not published yet")
    oldest_pending_age_seconds = serializers.FloatField(help_text="age of the oldest of them (0 when none)")
    outbox_dead = serializers.IntegerField(help_text="rows the relay gave up on")
    dead_letters = serializers.IntegerField(help_text="consumed messages whose handler kept failing")
    last_dead_letter = serializers.CharField(allow_null=True)
    published = serializers.IntegerField(required=False, help_text="retained published rows (only with ?published=1)")


def relay_state() -> dict:
    """This project's outbox backlog and dead rows, and its consumer's dead letters, from its own database."""
    pending = OutboxEvent.objects.filter(status=OutboxEvent.Status.PENDING).aggregate(n=Count("id"),
                                                                                      oldest=Min("occurred_at"))
    last = DeadLetter.objects.order_by("-id").values("event_type", "error").first()
    return {
        "project": sync_settings().origin,
        "backlog": pending["n"],
        "oldest_pending_age_seconds": round((timezone.now() - pending["oldest"]).total_seconds(), 3)
        if pending["oldest"] else 0.0,
        "outbox_dead": OutboxEvent.objects.filter(status=OutboxEvent.Status.DEAD).count(),
        "dead_letters": DeadLetter.objects.count(),
        "last_dead_letter": f"{last['event_type']}: {last['error'][:200]}" if last else None,
    }


class RelayStateView(APIView):
    # Internal ops endpoint (read-only counts): same exposure as /metrics and /sync/checksums/.
    authentication_classes: list = []
    permission_classes: list = []
    serializer_class = RelayStateSerializer

    def get(self, request):
        state = relay_state()
        if request.query_params.get("published") == "1":
            state["published"] = OutboxEvent.objects.filter(status=OutboxEvent.Status.PUBLISHED).count()
        return Response(state)
