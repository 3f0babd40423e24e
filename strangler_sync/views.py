"""Checksum endpoints (``/sync/checksums/<aggregate>/``) each project exposes for ``sync_verify``.

* ``?`` (nothing): ``{"aggregate", "count", "min_id", "max_id"}``
* ``?buckets=N[&start=&end=]``: the stats plus ``buckets: [{start, end, count, checksum}]`` over [start, end]
  (default: this side's min..max; the verifier passes the union of both sides' ranges)
* ``?start=&end=``: ``rows: {id: hash}`` for the drill-down into one differing bucket

For UUID/str-keyed aggregates the stats say ``"keys": "hash"`` and start/end are key positions (a hash of
the key's text, ``checksums.key_position``), and rows are keyed by the key's text.

Bucket and row answers carry ``hash`` (``checksums.HASH_FORMAT``): two sides only compare in the same format.
"""

from __future__ import annotations

import hmac

from rest_framework import exceptions, serializers
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from strangler_sync.checksums import HASH_FORMAT, aggregate_stats, checksum_buckets, checksum_rows
from strangler_sync.conf import sync_settings
from strangler_sync.verify import MAX_BUCKETS

MAX_ROW_SPAN = 1_000_000


class ChecksumQuerySerializer(serializers.Serializer):
    buckets = serializers.IntegerField(required=False, min_value=1, max_value=MAX_BUCKETS)
    start = serializers.IntegerField(required=False)
    end = serializers.IntegerField(required=False)

    def validate(self, attrs):
        start, end = attrs.get("start"), attrs.get("end")
        if (start is None) != (end is None):
            raise serializers.ValidationError("start and end go together")
        if start is not None and end < start:
            raise serializers.ValidationError("end must be >= start")
        return attrs


class HasVerifyToken(BasePermission):
    """The caller sends ``Authorization: Bearer <STRANGLER_SYNC["VERIFY_TOKEN"]>``; with no token set, no one
    is let in (the hashes and counts of a whole table are not public)."""

    def has_permission(self, request, view) -> bool:
        expected = sync_settings().verify_token
        if not expected:
            raise exceptions.PermissionDenied("STRANGLER_SYNC['VERIFY_TOKEN'] is not set: this endpoint answers no one")
        scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), expected.encode()):
            raise exceptions.NotAuthenticated("send Authorization: Bearer <STRANGLER_SYNC['VERIFY_TOKEN']>")
        return True


class ChecksumView(APIView):
    # Internal ops endpoint (read-only, hashes only): its own token, not the project's user authentication.
    authentication_classes: list = []
    permission_classes = [HasVerifyToken]

    def get(self, request, aggregate: str):
        query = ChecksumQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        stats = aggregate_stats(aggregate_type=aggregate)
        if "buckets" in params:
            start = params.get("start", stats["min_id"])
            end = params.get("end", stats["max_id"])
            buckets = [] if start is None else checksum_buckets(
                aggregate_type=aggregate, start=start, end=end, buckets=params["buckets"]
            )
            return Response({**stats, "hash": HASH_FORMAT, "start": start, "end": end, "buckets": buckets})
        if "start" in params:
            # a range of integer ids is read through the key's index; hash positions scan the table anyway
            if stats.get("keys") != "hash" and params["end"] - params["start"] + 1 > MAX_ROW_SPAN:
                raise serializers.ValidationError(f"a row drill-down spans at most {MAX_ROW_SPAN} ids; use buckets")
            rows = checksum_rows(aggregate_type=aggregate, start=params["start"], end=params["end"])
            return Response(
                {**stats, "hash": HASH_FORMAT, "start": params["start"], "end": params["end"], "rows": rows}
            )
        return Response(stats)
