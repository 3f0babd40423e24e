"""Ownership endpoint (``/sync/ownership/``): the control plane reads and flips a project's ownership over HTTP.

* ``GET``: ``{"project", "owners": [{aggregate, owner, epoch, stored}]}`` (read-only, like ``/sync/relay/``);
  ``?watermarks=product,category`` adds ``watermarks: {aggregate: n}`` (``ownership_watermark``: the drain check
  of a flip, one scan of the version rows per aggregate type).
* ``POST {"aggregate", "owner", "epoch"}`` (``Authorization: Bearer <VERIFY_TOKEN>``, the token the control
  plane already sends for checksums): ``ownership_set`` at that epoch; waits for the writes in flight of the
  aggregate type, answers the new state, idempotent for the same owner and epoch, 409 ``stale_epoch`` for an
  older epoch, 400 for bad input. No shared filesystem between the projects or with the control plane.
"""

from __future__ import annotations

import re

from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from strangler_sync.conf import sync_settings
from strangler_sync.ownership import ownership_set, ownership_states, ownership_watermark
from strangler_sync.views import HasVerifyToken

NAME = r"^[a-z][a-z0-9_-]{0,59}$"
NAME_RE = re.compile(NAME)


class OwnershipRowSerializer(serializers.Serializer):
    aggregate = serializers.CharField()
    owner = serializers.CharField()
    epoch = serializers.IntegerField()
    stored = serializers.BooleanField(help_text="false: the seed file's (or the default) owner, no row yet")


class OwnershipStateSerializer(serializers.Serializer):
    """The GET answer's shape (for the OpenAPI schema)."""

    project = serializers.CharField()
    owners = OwnershipRowSerializer(many=True)
    watermarks = serializers.DictField(child=serializers.IntegerField(), required=False,
                                       help_text="only with ?watermarks=a,b")


class OwnershipFlipSerializer(serializers.Serializer):
    aggregate = serializers.RegexField(NAME, max_length=60)
    owner = serializers.RegexField(NAME, max_length=60)
    epoch = serializers.IntegerField(min_value=0, help_text="the same on every project of the flip (max + 1)")


class OwnershipView(APIView):
    authentication_classes: list = []
    serializer_class = OwnershipStateSerializer

    def get_permissions(self):
        # reading is as open as /sync/relay/; flipping takes the verify token
        return [] if self.request.method in ("GET", "HEAD", "OPTIONS") else [HasVerifyToken()]

    def get(self, request):
        answer = {"project": sync_settings().origin, "owners": ownership_states()}
        names = [n for n in request.query_params.get("watermarks", "").split(",") if n]
        if names:
            for name in names:
                if not NAME_RE.match(name):
                    raise serializers.ValidationError({"watermarks": f"invalid aggregate name {name[:60]!r}"})
            answer["watermarks"] = {name: ownership_watermark(aggregate_type=name) for name in names}
        return Response(answer)

    def post(self, request):
        flip = OwnershipFlipSerializer(data=request.data)
        flip.is_valid(raise_exception=True)
        data = flip.validated_data
        state = ownership_set(aggregate_type=data["aggregate"], owner=data["owner"], epoch=data["epoch"])
        return Response({"project": sync_settings().origin, **state})
