"""Bucketed checksums over canonical row hashes, by integer id range (what ``sync_verify`` compares).

A bucket's checksum is sha256 over its rows' ``id:hash`` in id order, so two sides agree on a bucket
exactly when they hold the same ids with the same canonical state. Rows are streamed in id order in
chunks (``.values()`` of the configured fields only), so a million rows never sit in memory at once.
"""

from __future__ import annotations

import hashlib

from django.db.models import Count, Max, Min

from strangler_sync.conf import sync_settings
from strangler_sync.snapshots import aggregate_model, canonical_row, row_hash

CHUNK = 5000


def aggregate_stats(*, aggregate_type: str) -> dict:
    config = sync_settings().aggregate(aggregate_type)
    model = aggregate_model(config)
    stats = model._default_manager.aggregate(
        count=Count("pk"), min_id=Min(config.id_field), max_id=Max(config.id_field)
    )
    return {"aggregate": aggregate_type, **stats}


def _rows(*, aggregate_type: str, start: int, end: int):
    """(id, hash) of every row with start <= id <= end, in id order, fetched by keyset pagination."""
    config = sync_settings().aggregate(aggregate_type)
    model = aggregate_model(config)
    attrs = sorted(set(config.fields.values()) | {config.id_field})
    cursor = start - 1
    while True:
        chunk = list(
            model._default_manager.filter(**{f"{config.id_field}__gt": cursor, f"{config.id_field}__lte": end})
            .order_by(config.id_field)
            .values(*attrs)[:CHUNK]
        )
        for values in chunk:
            yield values[config.id_field], row_hash(canonical_row(config=config, values=values))
        if len(chunk) < CHUNK:
            return
        cursor = chunk[-1][config.id_field]


def bucket_bounds(*, start: int, end: int, buckets: int) -> list[tuple[int, int]]:
    """Split [start, end] into at most `buckets` contiguous integer ranges (deterministic on both sides)."""
    span = end - start + 1
    buckets = max(1, min(buckets, span))
    bounds = []
    for i in range(buckets):
        lo = start + span * i // buckets
        hi = start + span * (i + 1) // buckets - 1
        bounds.append((lo, hi))
    return bounds


def checksum_buckets(*, aggregate_type: str, start: int, end: int, buckets: int) -> list[dict]:
    bounds = bucket_bounds(start=start, end=end, buckets=buckets)
    digests = [hashlib.sha256() for _ in bounds]
    counts = [0] * len(bounds)
    span = end - start + 1
    n = len(bounds)
    for row_id, digest in _rows(aggregate_type=aggregate_type, start=start, end=end):
        index = (row_id - start) * n // span
        # integer division can place a row one bucket off at the edges; fix it against the bounds
        while bounds[index][1] < row_id:
            index += 1
        while bounds[index][0] > row_id:
            index -= 1
        digests[index].update(f"{row_id}:{digest}\n".encode())
        counts[index] += 1
    return [
        {"start": lo, "end": hi, "count": counts[i], "checksum": digests[i].hexdigest()[:32]}
        for i, (lo, hi) in enumerate(bounds)
    ]


def checksum_rows(*, aggregate_type: str, start: int, end: int) -> dict[str, str]:
    """Per-id hashes (ids as strings: JSON object keys) of one id range."""
    return {str(row_id): digest for row_id, digest in _rows(aggregate_type=aggregate_type, start=start, end=end)}
