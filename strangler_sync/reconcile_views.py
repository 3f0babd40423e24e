"""Reconciliation state endpoint (``/sync/reconcile/``): the last ``sync_reconcile`` pass per aggregate and
follower, for the control plane's reconcile gate and dashboards. Read-only; one small row per pair."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from strangler_sync.conf import sync_settings
from strangler_sync.reconcile import reconcile_states


class ReconcilePassSerializer(serializers.Serializer):
    aggregate = serializers.CharField()
    follower = serializers.CharField(help_text="the follower's base URL")
    status = serializers.ChoiceField(choices=["clean", "repaired", "failed"], help_text="of the last pass")
    differences = serializers.IntegerField(help_text="found by the last pass")
    repaired = serializers.IntegerField(help_text="re-emitted by the last pass")
    duration_seconds = serializers.FloatField()
    finished_at = serializers.DateTimeField()
    error = serializers.CharField(allow_null=True, help_text="why the last pass failed")
    last_clean_at = serializers.DateTimeField(allow_null=True)
    last_clean_age_seconds = serializers.FloatField(allow_null=True, help_text="null: no clean pass yet")
    passes = serializers.IntegerField()
    failed_passes = serializers.IntegerField()
    differences_found_total = serializers.IntegerField()
    repaired_total = serializers.IntegerField()


class ReconcileStateSerializer(serializers.Serializer):
    """The answer's shape (for the OpenAPI schema)."""

    project = serializers.CharField()
    passes = ReconcilePassSerializer(many=True)


class ReconcileStateView(APIView):
    # Internal ops endpoint (read-only counts): same exposure as /sync/relay/ and /metrics.
    authentication_classes: list = []
    permission_classes: list = []
    serializer_class = ReconcileStateSerializer

    def get(self, request):
        return Response({"project": sync_settings().origin, "passes": reconcile_states()})
