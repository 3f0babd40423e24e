"""Outbox writes: ``event_publish`` (inside the caller's transaction) and the relay's bookkeeping on outbox rows."""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from servicekit.optional import optional_import
from servicekit.request_id import get_request_id
from servicekit.trace_context import current_trace
from servicekit.tracing import span_continued, tracing_on
from strangler_sync.aggregates import SNAPSHOT, aggregate_of_event
from strangler_sync.capture import AUTOMATIC
from strangler_sync.conf import sync_settings
from strangler_sync.errors import NotInTransaction
from strangler_sync.handlers import current_synced_event
from strangler_sync.models import AggregateVersion, AppliedVersion, OutboxEvent
from strangler_sync.ownership import ownership_fence
from strangler_sync.read_your_writes import written_position_note
from strangler_sync.schemas import payload_validate

logger = logging.getLogger(__name__)


def aggregate_version_next(*, aggregate_type: str, aggregate_id: str) -> int:
    """Issue the aggregate's next version: one upsert that keeps the version row locked until commit.

    ``INSERT .. ON CONFLICT DO UPDATE .. RETURNING`` is atomic on PostgreSQL and SQLite (3.35+) and holds
    the row lock (PostgreSQL) / the database write lock (SQLite) until the caller's transaction ends, so
    two concurrent writers of one aggregate get consecutive versions in commit order.

    The next version is also above the newest version this project *applied* for the aggregate: after an
    ownership flip (either way) the new owner goes on numbering where the previous owner stopped, so the
    follower's version guard never drops the new owner's events as stale.
    """
    table = connection.ops.quote_name(AggregateVersion._meta.db_table)
    applied_table = connection.ops.quote_name(AppliedVersion._meta.db_table)
    greatest = "MAX" if connection.vendor == "sqlite" else "GREATEST"  # two-argument scalar max
    applied = (
        f"COALESCE((SELECT version FROM {applied_table} WHERE aggregate_type = %s AND aggregate_id = %s), 0)"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (aggregate_type, aggregate_id, version) VALUES (%s, %s, {applied} + 1) "
            f"ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET version = {greatest}({table}.version, "
            f"{applied}) + 1 RETURNING version",
            [aggregate_type, aggregate_id, aggregate_type, aggregate_id, aggregate_type, aggregate_id],
        )
        return int(cursor.fetchone()[0])


def aggregate_version_current(*, aggregate_type: str, aggregate_id: str) -> int:
    row = AggregateVersion.objects.filter(aggregate_type=aggregate_type, aggregate_id=aggregate_id).first()
    return row.version if row else 0


def event_publish(
    *,
    event_type: str,
    aggregate_type: str,
    aggregate_id: int | str,
    payload: dict,
    schema_version: int = 1,
    version: int | None = None,
    repair: bool = False,
) -> OutboxEvent | None:
    """Record an event in the outbox, atomically with the caller's write (call inside transaction.atomic()).

    The payload must be the aggregate's full state after the change (validated against its schema).
    ``version`` is issued here (per aggregate, +1); snapshot events pass the current version instead.
    Refuses (NotOwner, rolling the write back) unless this project owns the aggregate type, checked under the
    ownership row's lock (``ownership_fence``); the event carries the owner's epoch.
    Returns None (writes nothing) while a synced event is being applied: followers never echo events; and
    for the change events of an aggregate with ``capture="automatic"``, whose triggers already wrote the row
    (so write paths that still publish need no change when an aggregate switches). Snapshots and
    ``repair=True`` (re-emits of verify's repair) are always written.
    """
    if not connection.in_atomic_block:
        raise NotInTransaction(f"event_publish({event_type!r}) must run inside the write's transaction.atomic()")
    if current_synced_event() is not None:
        return None
    # The fence: this transaction holds the ownership row (shared) until it commits, so it either commits
    # before a flip of the aggregate type or sees the flip and raises NotOwner (the write rolls back).
    epoch = ownership_fence(aggregate_type=aggregate_type)
    aggregate, action = aggregate_of_event(event_type=event_type)
    if aggregate is not None and aggregate.capture == AUTOMATIC and action != SNAPSHOT and not repair:
        return None
    payload_validate(event_type=event_type, schema_version=schema_version, payload=payload)
    config = sync_settings()
    if config.relay_trigger == "celery":  # checked before the row: the trigger itself runs only after the commit
        optional_import("celery", extra="celery", needed_for='STRANGLER_SYNC["RELAY_TRIGGER"] = "celery" (or set '
                        '"none" and run manage.py sync_relay)')
    aggregate_id = str(aggregate_id)
    if version is None:
        version = aggregate_version_next(aggregate_type=aggregate_type, aggregate_id=aggregate_id)
    now = timezone.now()
    fields = dict(event_type=event_type, aggregate_type=aggregate_type, aggregate_id=aggregate_id, version=version,
                  payload=payload, schema_version=schema_version, occurred_at=now, origin=config.origin,
                  correlation_id=get_request_id() or "", epoch=epoch, next_attempt_at=now)
    trace = current_trace.get()
    if trace is not None and tracing_on():
        # the write's own span: the relay's and the consumers' spans are its children (the envelope names it)
        fields["message_id"] = uuid.uuid4()
        with span_continued(name=f"outbox write {event_type}", parent=trace, kind="producer", attributes={
                "messaging.system": "strangler_sync", "messaging.operation.type": "create",
                "messaging.message.id": str(fields["message_id"]),
                "strangler.aggregate": f"{aggregate_type}:{aggregate_id}", "strangler.version": version}) as span:
            event = OutboxEvent.objects.create(**fields, traceparent=span.traceparent)
    else:
        event = OutboxEvent.objects.create(**fields, traceparent=trace.traceparent if trace is not None else "")
    written_position_note(aggregate_type=aggregate_type, aggregate_id=aggregate_id, version=version)
    if config.relay_trigger == "celery":
        transaction.on_commit(relay_trigger)
    return event


def relay_trigger() -> None:
    """Ask a Celery worker to publish now; failures only log (the beat sweep publishes the row later)."""
    from strangler_sync.tasks import relay_publish_pending

    try:
        relay_publish_pending.apply_async(retry=False, ignore_result=True)
    except Exception:  # the broker being down must not fail a committed write
        logger.warning("could not trigger the outbox relay; the periodic sweep will publish", exc_info=True)


_COPY_FIELDS = ["message_id", "event_type", "aggregate_type", "aggregate_id", "version", "payload", "schema_version",
                "occurred_at", "origin", "correlation_id", "status", "attempts", "next_attempt_at", "last_error"]


@dataclass(slots=True)
class OutboxRow:
    """An outbox row not saved yet, without a model instance (backfill builds 10^5 of them: Model.__init__
    would cost more than the COPY). Same attribute names as OutboxEvent, so ``event_envelope`` reads both."""

    event_type: str
    aggregate_type: str
    aggregate_id: str
    version: int
    payload: dict
    occurred_at: datetime
    origin: str
    correlation_id: str
    next_attempt_at: datetime
    schema_version: int = 1
    message_id: uuid.UUID = field(default_factory=uuid.uuid4)
    status: str = OutboxEvent.Status.PENDING
    attempts: int = 0
    last_error: str = ""
    traceparent: str = ""  # not copied: backfill runs outside any trace (the column's default is "")


def outbox_insert_many(*, events: list[OutboxRow]) -> None:
    """Insert many unsaved outbox rows (backfill): COPY on PostgreSQL, bulk_create elsewhere.

    Django 5.2's bulk_create on PostgreSQL sends UNNEST arrays, which psycopg's client-side binding
    escapes value by value with regular expressions: COPY is an order of magnitude faster for 10^5 rows.
    """
    if connection.vendor != "postgresql":
        OutboxEvent.objects.bulk_create(
            [OutboxEvent(**{name: getattr(e, name) for name in _COPY_FIELDS}) for e in events], batch_size=1000
        )
        return
    import json

    meta = OutboxEvent._meta
    columns = ", ".join(connection.ops.quote_name(meta.get_field(f).column) for f in _COPY_FIELDS)
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {connection.ops.quote_name(meta.db_table)} ({columns}) FROM STDIN") as copy:
            for e in events:
                copy.write_row((e.message_id, e.event_type, e.aggregate_type, e.aggregate_id, e.version,
                                json.dumps(e.payload), e.schema_version, e.occurred_at, e.origin, e.correlation_id,
                                e.status, e.attempts, e.next_attempt_at, e.last_error))


def aggregate_versions_ensure(*, aggregate_type: str, aggregate_ids: list[str]) -> dict[str, int]:
    """Current version of each aggregate, creating version 1 for aggregates that never had an event."""
    table = connection.ops.quote_name(AggregateVersion._meta.db_table)
    if aggregate_ids and connection.vendor == "postgresql":
        # two array parameters instead of 3 placeholders per id: psycopg's client-side binding splits and
        # escapes every placeholder, which dominated a 2,000-id batch
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (aggregate_type, aggregate_id, version) "
                "SELECT %s, unnest(%s::varchar[]), 1 ON CONFLICT (aggregate_type, aggregate_id) DO NOTHING",
                [aggregate_type, aggregate_ids],
            )
            cursor.execute(
                f"SELECT aggregate_id, version FROM {table} WHERE aggregate_type = %s AND aggregate_id = ANY(%s)",
                [aggregate_type, aggregate_ids],
            )
            return dict(cursor.fetchall())
    if aggregate_ids:
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (aggregate_type, aggregate_id, version) VALUES "
                + ", ".join(["(%s, %s, 1)"] * len(aggregate_ids))
                + " ON CONFLICT (aggregate_type, aggregate_id) DO NOTHING",
                [v for aggregate_id in aggregate_ids for v in (aggregate_type, aggregate_id)],
            )
    return dict(
        AggregateVersion.objects.filter(aggregate_type=aggregate_type, aggregate_id__in=aggregate_ids).values_list(
            "aggregate_id", "version"
        )
    )


def outbox_backoff_delay(*, attempts: int) -> float:
    """Exponential backoff with full jitter in [50%, 100%] of min(max, base * 2^(attempts-1))."""
    config = sync_settings()
    ceiling = min(config.backoff_max, config.backoff_base * (2 ** max(0, attempts - 1)))
    return ceiling * random.uniform(0.5, 1.0)


def outbox_mark_published(*, event_ids: list[int]) -> int:
    if not event_ids:
        return 0
    if connection.vendor == "postgresql":
        # one array parameter rather than a placeholder per id (client-side binding quotes each one)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {connection.ops.quote_name(OutboxEvent._meta.db_table)} SET status = %s, published_at = %s, "
                "last_error = '' WHERE id = ANY(%s)",
                [OutboxEvent.Status.PUBLISHED.value, timezone.now(), list(event_ids)],
            )
            return cursor.rowcount
    return OutboxEvent.objects.filter(id__in=event_ids).update(
        status=OutboxEvent.Status.PUBLISHED, published_at=timezone.now(), last_error=""
    )


def outbox_mark_failed(*, event: OutboxEvent, error: str) -> OutboxEvent:
    """Count a failed publish: schedule a retry with backoff, or mark dead after MAX_ATTEMPTS."""
    config = sync_settings()
    event.attempts += 1
    event.last_error = error[:2000]
    if event.attempts >= config.max_attempts:
        event.status = OutboxEvent.Status.DEAD
    else:
        event.next_attempt_at = timezone.now() + timedelta(seconds=outbox_backoff_delay(attempts=event.attempts))
    event.save(update_fields=["attempts", "last_error", "status", "next_attempt_at"])
    return event


def outbox_requeue(*, event_ids: list[int]) -> int:
    """Give dead (or stuck) rows another round of attempts (admin action)."""
    return OutboxEvent.objects.filter(id__in=event_ids).exclude(status=OutboxEvent.Status.PUBLISHED).update(
        status=OutboxEvent.Status.PENDING, attempts=0, next_attempt_at=timezone.now(), last_error=""
    )


def outbox_cleanup(*, older_than_days: int | None = None) -> int:
    """Delete published rows older than the retention (dead and pending rows are kept)."""
    days = sync_settings().retention_days if older_than_days is None else older_than_days
    cutoff = timezone.now() - timedelta(days=days)
    deleted, _ = OutboxEvent.objects.filter(status=OutboxEvent.Status.PUBLISHED, published_at__lt=cutoff).delete()
    return deleted


def aggregate_reemit(*, aggregate_type: str, ids: list[int | str]) -> dict[str, int]:
    """Repair: re-emit the owner's current state of each key with a new version (deleted if the row is gone).

    A new version (not the current one) is needed because the follower may already hold the current
    version number with different state; equal versions would be dropped as stale.
    """
    from strangler_sync.aggregates import DELETED
    from strangler_sync.events import snapshot_event_type
    from strangler_sync.snapshots import aggregate_model, aggregate_payload

    config = sync_settings().aggregate(aggregate_type)
    manager = aggregate_model(config)._default_manager
    counts = {"snapshots": 0, "deletes": 0, "skipped": 0}
    for row_id in sorted(ids, key=str) if not config.integer_keys else sorted(map(int, ids)):
        with transaction.atomic():
            instance = manager.filter(**{config.id_field: row_id}).first()
            if instance is None:
                if DELETED not in config.actions:
                    counts["skipped"] += 1
                    continue
                event_publish(event_type=config.event(DELETED), aggregate_type=aggregate_type, aggregate_id=row_id,
                              payload={config.key: config.key_json(row_id)}, repair=True)
                counts["deletes"] += 1
            else:
                event_publish(event_type=snapshot_event_type(aggregate_type), aggregate_type=aggregate_type,
                              aggregate_id=row_id, payload=aggregate_payload(aggregate_type=aggregate_type,
                                                                             instance=instance))
                counts["snapshots"] += 1
    return counts
