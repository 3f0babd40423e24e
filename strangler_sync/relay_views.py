"""Relay state endpoint (``/sync/relay/``): how far this project's outbox is behind, for gates and dashboards.

The control plane reads it over HTTP from each project's own base URL, so it needs no project code, settings
or database credentials. Two indexed aggregates over the outbox and one over the dead letters: cheap enough
to poll every few seconds.
"""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from strangler_sync.conf import sync_settings
from strangler_sync.models import DeadLetter
from strangler_sync.selectors import outbox_stats


class RelayStateSerializer(serializers.Serializer):
    """The answer's shape (for the OpenAPI schema)."""

    project = serializers.CharField()
    backlog = serializers.IntegerField(help_text="outbox rows not published yet")
    oldest_pending_age_seconds = serializers.FloatField(help_text="age of the oldest of them (0 when none)")
    published = serializers.IntegerField(help_text="published rows still kept (retention)")
    outbox_dead = serializers.IntegerField(help_text="rows the relay gave up on")
    dead_letters = serializers.IntegerField(help_text="consumed messages whose handler kept failing")
    last_dead_letter = serializers.CharField(allow_null=True)


class RelayStateView(APIView):
    # Internal ops endpoint (read-only counts): same exposure as /metrics and /sync/checksums/.
    authentication_classes: list = []
    permission_classes: list = []
    serializer_class = RelayStateSerializer

    def get(self, request):
        stats = outbox_stats()
        last = DeadLetter.objects.order_by("-id").values("event_type", "error").first()
        return Response({
            "project": sync_settings().origin,
            "backlog": stats["pending"],
            "oldest_pending_age_seconds": round(stats["oldest_pending_age_seconds"], 3),
            "published": stats["published"],
            "outbox_dead": stats["dead"],
            "dead_letters": DeadLetter.objects.count(),
            "last_dead_letter": f"{last['event_type']}: {last['error'][:200]}" if last else None,
        })
