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

from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from strangler_sync.checksums import HASH_FORMAT, aggregate_stats, checksum_buckets, checksum_rows

MAX_BUCKETS = 100_000
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


class ChecksumView(APIView):
    # Internal ops endpoint (read-only, hashes only): same exposure as /metrics.
    authentication_classes: list = []
    permission_classes: list = []

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
