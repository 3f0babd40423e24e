"""Continuous reconciliation: one verify pass of an aggregate against a follower, repaired and recorded.

Runs in the owner's project (``manage.py sync_reconcile``), because repair re-emits the owner's rows from its
own database (``aggregate_reemit``, the same path as ``sync_verify --repair``). A pass costs one bucket
checksum request per side when the two sides are equal. Each pass updates the pair's ``ReconcileState`` row
(running totals and the last pass), which ``/sync/reconcile/`` and ``/metrics`` read, so any process of the
project can report it. A pass that could not verify or repair is recorded as failed, never as clean.
"""

from __future__ import annotations

import time

from django.db import transaction
from django.utils import timezone

from strangler_sync.errors import NotOwner
from strangler_sync.models import ReconcileState
from strangler_sync.ownership import ownership_require_owner
from strangler_sync.services import aggregate_reemit
from strangler_sync.verify import VerifyError, verify_aggregate


def reconcile_pass(
    *, aggregate_type: str, source: str, follower: str, buckets: int = 256, timeout: float = 120.0,
) -> ReconcileState:
    """Verify `aggregate_type` between `source` (this owner's URL) and `follower`, re-emit what differs, record it."""
    started = time.perf_counter()
    found = repaired = 0
    error = ""
    try:
        result = verify_aggregate(source=source, follower=follower, aggregate=aggregate_type, buckets=buckets,
                                  timeout=timeout)
        found = result.differences
        if found:
            ownership_require_owner(aggregate_type=aggregate_type)  # re-emitting as a non-owner would fork the data
            counts = aggregate_reemit(aggregate_type=aggregate_type,
                                      ids=result.missing + result.extra + result.changed)
            repaired = counts["snapshots"] + counts["deletes"]
    except (VerifyError, NotOwner) as exc:
        error = str(exc)
    if error:
        status = ReconcileState.Status.FAILED
    elif found:
        status = ReconcileState.Status.REPAIRED
    else:
        status = ReconcileState.Status.CLEAN
    return _record(aggregate_type=aggregate_type, follower=follower, status=status, found=found, repaired=repaired,
                   seconds=time.perf_counter() - started, error=error)


def _record(*, aggregate_type: str, follower: str, status: str, found: int, repaired: int, seconds: float,
            error: str) -> ReconcileState:
    now = timezone.now()
    with transaction.atomic():
        state = ReconcileState.objects.select_for_update().filter(aggregate_type=aggregate_type,
                                                                  follower=follower).first()
        if state is None:
            state = ReconcileState(aggregate_type=aggregate_type, follower=follower)
        state.passes += 1
        state.failed_passes += status == ReconcileState.Status.FAILED
        state.differences_found_total += found
        state.repaired_total += repaired
        state.last_status, state.last_differences, state.last_repaired = status, found, repaired
        state.last_duration_seconds, state.last_finished_at, state.last_error = seconds, now, error[:2000]
        if status == ReconcileState.Status.CLEAN:
            state.last_clean_at = now
        state.save()
    return state


def reconcile_states() -> list[dict]:
    """Every (aggregate, follower) pair this project reconciles: totals, last pass, age of the last clean pass."""
    now = timezone.now()
    return [
        {
            "aggregate": s.aggregate_type, "follower": s.follower, "status": s.last_status,
            "differences": s.last_differences, "repaired": s.last_repaired,
            "duration_seconds": round(s.last_duration_seconds, 3), "finished_at": s.last_finished_at.isoformat(),
            "error": s.last_error or None,
            "last_clean_at": s.last_clean_at.isoformat() if s.last_clean_at else None,
            "last_clean_age_seconds": round((now - s.last_clean_at).total_seconds(), 3) if s.last_clean_at
            else None,
            "passes": s.passes, "failed_passes": s.failed_passes,
            "differences_found_total": s.differences_found_total, "repaired_total": s.repaired_total,
        }
        for s in ReconcileState.objects.order_by("aggregate_type", "follower")
    ]
