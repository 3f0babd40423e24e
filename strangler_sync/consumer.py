"""The inbox: applies received events exactly once per message_id and never older than what was applied.

``inbox_apply`` applies one message in one transaction (``inbox_apply_batch`` does the same for a
batch with a few statements per batch): it locks the aggregate's AppliedVersion row, skips a message
whose message_id is already in the inbox (duplicate) or whose version is not newer than the applied
one (stale), or whose ``epoch`` is older than the ownership epoch this project knows for its aggregate
type (fenced: a stale owner's event; recorded in the inbox, counted under outcome "fenced", never applied:
a retry could never succeed since epochs only grow, and reconciliation repairs from the current owner),
otherwise runs the registered handler and records both rows. The broker message is acked
only after that transaction committed, so a crash at any point means redelivery, and redelivery is
harmless. A database that is down or refuses the transaction gives the batch back to the broker
untouched (no attempt counted), so an outage never dead-letters anything.

``SyncConsumer`` (``manage.py sync_consume``) is a kombu ConsumerMixin rather than a Celery worker:
it needs per-message ack after commit, the raw message for dead-lettering, and nothing of Celery's
task protocol (the events are plain JSON envelopes any language can publish or read).

Bodies: one envelope object, or a JSON array of envelopes (the relay packs up to MESSAGE_BATCH events
of one routing key into a message: the broker's cost is per message). Each event of an array is applied
exactly as if it had come alone: inbox dedupe by its own message_id, version guard, own-origin skip,
handlers or bulk handlers, in the same batch transaction as the rest. The message is acked once, after
all its events committed or were handed off: an event of an array that fails (bad envelope, unknown
type, handler error) is re-published alone, as a single-envelope message with ``x-sync-attempts`` + 1,
and its siblings are not held back by it. Ordering per aggregate is unchanged: the version guard and
full-state events make any delivery order give the in-order result, arrays or not.

Failures (malformed JSON, envelope or payload not matching the schema, unknown event type, handler
error) are retried by re-publishing the message to this queue with ``x-sync-attempts`` + 1 and acking
the original; after CONSUMER_MAX_ATTEMPTS it goes to ``<QUEUE>.dlq`` with the error in ``x-sync-error``
and a DeadLetter row (admin). Delivery guarantees by transport: RabbitMQ and the embedded default
(``sqlite-queue://``, sqlite_transport) redeliver the unacked messages of a consumer that died; kombu's
filesystem transport (``filesystem://``, still accepted) removes the file on receipt, so there a consumer
killed -9 between receipt and ack loses that message until ``sync_verify --repair`` re-emits it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import datetime

from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone
from kombu import Producer
from kombu.mixins import ConsumerMixin

from servicekit.request_id import current_request_id
from servicekit.trace_context import current_trace, trace_child, traceparent_parse
from servicekit.tracing import span_continued, span_failed, span_scope, span_start, span_trace_context, tracing_on
from strangler_sync import metrics
from strangler_sync.broker import (
    ATTEMPTS_HEADER,
    ERROR_HEADER,
    BrokerRefused,
    amqp_reads_buffered,
    broker_outage,
    consumer_queue,
    dead_letter_queue,
    topology_declare,
)
from strangler_sync.conf import sync_settings
from strangler_sync.errors import SchemaError
from strangler_sync.handlers import SyncEvent, applying_synced_event, bulk_handler_get, handler_get
from strangler_sync.models import AppliedVersion, DeadLetter, InboxMessage
from strangler_sync.ownership import ownership_epoch_lock
from strangler_sync.schemas import payload_validate

logger = logging.getLogger(__name__)

# A database that is down, restarting or refused the transaction (deadlock): retry, never dead-letter.
DATABASE_TRANSIENT = (OperationalError, InterfaceError)

APPLIED = "applied"
DUPLICATE = "duplicate"
STALE = "stale"
FENCED = "fenced"  # emitted under an ownership epoch older than the one this project knows: never applied
OWN = "own"  # an event this project emitted itself (its queue matches its own routing keys): nothing to do

# the required keys of an envelope and their JSON types (strangler_sync/event-envelope.schema.json says the same)
ENVELOPE_FIELDS = {
    "message_id": str, "event_type": str, "aggregate_type": str, "aggregate_id": str, "version": int,
    "schema_version": int, "payload": dict, "occurred_at": str, "origin": str,
}


class UnknownEventType(SchemaError):
    code = "unknown_event_type"


def event_parse(*, envelope) -> SyncEvent:
    """Validate an envelope (and its payload against the schema) into a SyncEvent; SchemaError otherwise."""
    if not isinstance(envelope, dict):
        raise SchemaError("message body is not a JSON object")
    problems = {k: f"expected {t.__name__}" for k, t in ENVELOPE_FIELDS.items()
                if not isinstance(envelope.get(k), t) or isinstance(envelope.get(k), bool)}
    epoch = envelope.get("epoch")
    if epoch is not None and (not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0):
        problems["epoch"] = "expected a non-negative int (or no epoch)"
    if problems:
        raise SchemaError("malformed event envelope", details=problems)
    try:
        occurred_at = datetime.fromisoformat(envelope["occurred_at"])
    except ValueError:
        raise SchemaError("occurred_at is not an ISO datetime") from None
    payload_validate(
        event_type=envelope["event_type"], schema_version=envelope["schema_version"], payload=envelope["payload"]
    )
    return SyncEvent(
        message_id=envelope["message_id"],
        event_type=envelope["event_type"],
        aggregate_type=envelope["aggregate_type"],
        aggregate_id=envelope["aggregate_id"],
        version=envelope["version"],
        schema_version=envelope["schema_version"],
        payload=envelope["payload"],
        occurred_at=occurred_at,
        origin=envelope["origin"],
        correlation_id=envelope.get("correlation_id") or "",
        # optional; an invalid one is ignored (as W3C asks of a traceparent header), never a reason to reject
        traceparent=parent.traceparent if (parent := traceparent_parse(envelope.get("traceparent"))) else "",
        epoch=epoch,
    )


@contextmanager
def event_scope(*, correlation_id: str, traceparent: str, span: str | None = None, attributes: dict | None = None):
    """Run the block in the emitting request's correlation id and as a child span of its trace (if any): a
    recorded span named `span` when tracing is on (servicekit.tracing), else a span id for the logs only."""
    parent = traceparent_parse(traceparent) if traceparent else None
    request_token = current_request_id.set(correlation_id or None)
    try:
        if parent is not None and span is not None and tracing_on():
            with span_continued(name=span, parent=parent, attributes=attributes):
                yield
            return
        trace_token = current_trace.set(trace_child(parent) if parent is not None else None)
        try:
            yield
        finally:
            current_trace.reset(trace_token)
    finally:
        current_request_id.reset(request_token)


def _applied_version_lock(*, aggregate_type: str, aggregate_id: str) -> int:
    """Lock the aggregate's AppliedVersion row (creating it at 0) and return its version: one statement."""
    table = connection.ops.quote_name(AppliedVersion._meta.db_table)
    now = AppliedVersion._meta.get_field("updated_at").get_db_prep_value(timezone.now(), connection)
    with connection.cursor() as cursor:
        # The no-op DO UPDATE takes the row lock (DO NOTHING would not, and would return no row).
        cursor.execute(
            f"INSERT INTO {table} (aggregate_type, aggregate_id, version, updated_at) VALUES (%s, %s, 0, %s) "
            "ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET aggregate_type = EXCLUDED.aggregate_type "
            "RETURNING version",
            [aggregate_type, aggregate_id, now],
        )
        return int(cursor.fetchone()[0])


def _inbox_record(*, event: SyncEvent, outcome: str) -> bool:
    """Insert the InboxMessage row; False when this message_id is already there (a duplicate)."""
    meta = InboxMessage._meta
    values = {
        "message_id": uuid.UUID(event.message_id), "event_type": event.event_type,
        "aggregate_type": event.aggregate_type, "aggregate_id": event.aggregate_id, "version": event.version,
        "origin": event.origin, "correlation_id": event.correlation_id, "outcome": outcome,
        "occurred_at": event.occurred_at, "received_at": timezone.now(),
    }
    columns = ", ".join(connection.ops.quote_name(meta.get_field(name).column) for name in values)
    params = [meta.get_field(name).get_db_prep_value(value, connection) for name, value in values.items()]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {connection.ops.quote_name(meta.db_table)} ({columns}) "
            f"VALUES ({', '.join(['%s'] * len(params))}) ON CONFLICT (message_id) DO NOTHING RETURNING id",
            params,
        )
        return cursor.fetchone() is not None


def inbox_apply(*, event: SyncEvent) -> str:
    """Apply one event in one transaction; returns applied, duplicate, stale, fenced or own. Handler errors propagate.

    Three statements besides the handler: lock-and-read the version row, insert the inbox row
    (ON CONFLICT DO NOTHING tells a duplicate), and bump the version when applied.
    """
    if event.origin == sync_settings().origin:
        return OWN
    handler = handler_get(event_type=event.event_type)
    if handler is None:
        raise UnknownEventType(f"no handler registered for {event.event_type!r}")
    with transaction.atomic():
        # Lock order: the aggregate's version row first, so duplicates and versions of one aggregate serialise.
        applied_version = _applied_version_lock(aggregate_type=event.aggregate_type, aggregate_id=event.aggregate_id)
        outcome = STALE if event.version <= applied_version else APPLIED
        if outcome == APPLIED and _fenced(event, {}):
            outcome = FENCED
        if not _inbox_record(event=event, outcome=outcome):
            return DUPLICATE
        if outcome != APPLIED:
            return outcome
        with applying_synced_event(event):
            handler(event=event)
        AppliedVersion.objects.filter(aggregate_type=event.aggregate_type, aggregate_id=event.aggregate_id).update(
            version=event.version, updated_at=timezone.now()
        )
    return APPLIED


def _applied_versions_lock(keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """_applied_version_lock for many aggregates in one statement (keys sorted: a fixed lock order)."""
    table = connection.ops.quote_name(AppliedVersion._meta.db_table)
    now = AppliedVersion._meta.get_field("updated_at").get_db_prep_value(timezone.now(), connection)
    upsert = (" ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET aggregate_type = EXCLUDED.aggregate_type "
              "RETURNING aggregate_type, aggregate_id, version")
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One JSON parameter instead of three placeholders per key (client-side binding splits and
            # quotes each one); WITH ORDINALITY keeps the sorted order, which is the lock order.
            cursor.execute(
                f"INSERT INTO {table} (aggregate_type, aggregate_id, version, updated_at) "
                "SELECT k.t, k.i, 0, %s FROM ROWS FROM (jsonb_to_recordset(%s::jsonb) AS (t text, i text)) "
                "WITH ORDINALITY AS k(t, i, n) ORDER BY k.n" + upsert,
                [now, json.dumps([{"t": t, "i": i} for t, i in keys])],
            )
        else:
            params: list = []
            for aggregate_type, aggregate_id in keys:
                params += [aggregate_type, aggregate_id, now]
            cursor.execute(
                f"INSERT INTO {table} (aggregate_type, aggregate_id, version, updated_at) VALUES "
                + ", ".join(["(%s, %s, 0, %s)"] * len(keys)) + upsert,
                params,
            )
        return {(row[0], row[1]): int(row[2]) for row in cursor.fetchall()}


def first_copy_claim(*, aggregate_type: str, copied: dict[str, int | None]) -> set[str]:
    """The version guard for a first copy (a dump import, any bulk load): which rows it may write.

    `copied` maps aggregate id -> the version the copy was taken at (None when the copy carries none).
    Run it in the loader's transaction: it locks those aggregates' version rows (the lock the consumer
    takes, so no event is applied between this check and the loader's commit) and returns the ids no
    event newer than the copy has been applied to: applied version 0 (nothing applied yet), or below the
    copy's version. For those with a version, the applied version moves up to it, so events the copy
    already contains are dropped as stale when they arrive. A row an event already brought here is never
    overwritten by an older copy; when the copy's version is unknown, any applied event wins (the events
    between it and the copy are still on their way: the follower ends on the newest state either way).
    """
    allowed: set[str] = set()
    bumps: list[tuple[int, str]] = []
    keys = sorted((aggregate_type, aggregate_id) for aggregate_id in copied)
    for start in range(0, len(keys), 1000):  # bounded statement size; sorted chunks keep the lock order
        current = _applied_versions_lock(keys[start:start + 1000])
        for (_type, aggregate_id), applied in current.items():
            version = copied[aggregate_id]
            if applied == 0 or (version is not None and applied < version):
                allowed.add(aggregate_id)
                if version is not None:
                    bumps.append((version, aggregate_id))
    if bumps:
        table = connection.ops.quote_name(AppliedVersion._meta.db_table)
        now = AppliedVersion._meta.get_field("updated_at").get_db_prep_value(timezone.now(), connection)
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {table} SET version = %s, updated_at = %s WHERE aggregate_type = %s AND aggregate_id = %s",
                [(version, now, aggregate_type, aggregate_id) for version, aggregate_id in bumps],
            )
    return allowed


def _fenced(event: SyncEvent, epochs: dict[str, int]) -> bool:
    """True when the event's epoch is older than the one this project knows for its aggregate type (the
    ownership row, locked shared until the apply commits; `epochs` caches it per batch). An event without an
    epoch (old publisher, capture trigger) is not fenced."""
    if event.epoch is None:
        return False
    if event.aggregate_type not in epochs:
        epochs[event.aggregate_type] = ownership_epoch_lock(aggregate_type=event.aggregate_type)
    if event.epoch >= epochs[event.aggregate_type]:
        return False
    logger.warning("sync fenced %s %s:%s v%s from %s: epoch %s < %s", event.event_type, event.aggregate_type,
                   event.aggregate_id, event.version, event.origin, event.epoch, epochs[event.aggregate_type],
                   extra={"message_id": event.message_id, "outcome": FENCED})
    return True


class InboxConflict(RuntimeError):
    """A message judged applicable is already in the inbox (an applied version older than its inbox row)."""


def inbox_apply_batch(*, events: list[SyncEvent]) -> list[str]:
    """Apply several events in the caller's transaction with a few statements per batch, not per event.

    Same rules as inbox_apply (the version rows of every aggregate in the batch are locked first, in
    sorted order; duplicates and stale versions are skipped), outcomes in the order of `events`.
    Any error propagates: the caller rolls the batch back and falls back to inbox_apply per event.

    PostgreSQL: a fixed number of statements per batch, each with one JSON parameter (no model
    instances, no per-value quoting): lock and read the versions; insert the inbox rows ``ON CONFLICT
    DO NOTHING RETURNING`` (what is not returned was already there: a duplicate) together with the
    version bump; one statement per bulk handler call. A message already in the inbox always has a
    version at or below its aggregate's applied version (both are written in one transaction and
    versions only grow), so it is judged stale before the insert tells it is a duplicate; should an
    applicable one ever be there, InboxConflict rolls the batch back to the careful per-event path.
    Other databases: the same rules through the ORM (duplicates read first).
    """
    own_origin = sync_settings().origin
    outcomes: dict[int, str] = {}
    candidates = []
    for index, event in enumerate(events):
        if event.origin == own_origin:
            outcomes[index] = OWN
        elif handler_get(event_type=event.event_type) is None:
            raise UnknownEventType(f"no handler registered for {event.event_type!r}")
        else:
            candidates.append((index, event))
    if not candidates:
        return [outcomes[i] for i in range(len(events))]
    postgresql = connection.vendor == "postgresql"
    keys = sorted({(e.aggregate_type, e.aggregate_id) for _, e in candidates})
    current = _applied_versions_lock(keys)
    ids = {index: str(uuid.UUID(event.message_id)) for index, event in candidates}
    if postgresql:
        seen: set[str] = set()  # the inbox insert itself tells the duplicates
    else:
        # Safe to read without a race: inserting an inbox row needs the aggregate's version lock we hold.
        seen = {str(m) for m in InboxMessage.objects.filter(message_id__in=list(ids.values())).values_list(
            "message_id", flat=True)}
    inbox_rows, to_apply = [], []
    epochs: dict[str, int] = {}
    for index, event in sorted(candidates, key=lambda item: (item[1].aggregate_type, item[1].aggregate_id,
                                                             item[1].version)):
        key = (event.aggregate_type, event.aggregate_id)
        if ids[index] in seen:
            outcomes[index] = DUPLICATE
            continue
        seen.add(ids[index])
        if event.version <= current[key]:
            outcomes[index] = STALE
        elif _fenced(event, epochs):
            outcomes[index] = FENCED
        else:
            outcomes[index] = APPLIED
            current[key] = event.version
            to_apply.append(event)
        inbox_rows.append((index, event))
    newest = sorted({(e.aggregate_type, e.aggregate_id): e.version for e in to_apply}.items())
    if postgresql:
        recorded = _inbox_record_pg(rows=[(ids[i], e, outcomes[i]) for i, e in inbox_rows], newest=newest)
        for index, _event in inbox_rows:
            if ids[index] not in recorded:
                if outcomes[index] == APPLIED:
                    raise InboxConflict(f"message {ids[index]} is in the inbox above the applied version")
                outcomes[index] = DUPLICATE
        _handlers_run(to_apply)
        return [outcomes[i] for i in range(len(events))]
    InboxMessage.objects.bulk_create([InboxMessage(
        message_id=ids[index], event_type=event.event_type, aggregate_type=event.aggregate_type,
        aggregate_id=event.aggregate_id, version=event.version, origin=event.origin,
        correlation_id=event.correlation_id, outcome=outcomes[index], occurred_at=event.occurred_at,
    ) for index, event in inbox_rows])
    _handlers_run(to_apply)
    if newest:
        table = connection.ops.quote_name(AppliedVersion._meta.db_table)
        now = AppliedVersion._meta.get_field("updated_at").get_db_prep_value(timezone.now(), connection)
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {table} SET version = %s, updated_at = %s WHERE aggregate_type = %s AND aggregate_id = %s",
                [(version, now, key[0], key[1]) for key, version in newest],
            )
    return [outcomes[i] for i in range(len(events))]


def _aware_iso(value: datetime) -> str:
    # what DateTimeField does with a naive datetime under USE_TZ: the default time zone
    if timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.get_default_timezone())
    return value.isoformat()


def _inbox_record_pg(*, rows: list[tuple[str, SyncEvent, str]], newest: list) -> set[str]:
    """Insert the inbox rows (skipping message_ids already there) and bump the applied versions: one statement.

    Returns the message_ids inserted. The version rows are already locked by _applied_versions_lock.
    """
    inbox = connection.ops.quote_name(InboxMessage._meta.db_table)
    versions = connection.ops.quote_name(AppliedVersion._meta.db_table)
    now = timezone.now().isoformat()
    inbox_json = json.dumps([
        {"m": message_id, "e": e.event_type, "t": e.aggregate_type, "i": e.aggregate_id, "v": e.version,
         "o": e.origin, "c": e.correlation_id, "x": outcome, "at": _aware_iso(e.occurred_at)}
        for message_id, e, outcome in rows
    ])
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH inserted AS (INSERT INTO {inbox} (message_id, event_type, aggregate_type, aggregate_id, version, "
            "origin, correlation_id, outcome, occurred_at, received_at) "
            "SELECT r.m, r.e, r.t, r.i, r.v, r.o, r.c, r.x, r.at, %s::timestamptz FROM jsonb_to_recordset(%s::jsonb) "
            "AS r(m uuid, e text, t text, i text, v bigint, o text, c text, x text, at timestamptz) "
            "ON CONFLICT (message_id) DO NOTHING RETURNING message_id), "
            f"bumped AS (UPDATE {versions} AS a SET version = b.v, updated_at = %s::timestamptz "
            "FROM jsonb_to_recordset(%s::jsonb) AS b(t text, i text, v bigint) "
            "WHERE a.aggregate_type = b.t AND a.aggregate_id = b.i) "
            "SELECT message_id::text FROM inserted",
            [now, inbox_json, now, json.dumps([{"t": t, "i": i, "v": v} for (t, i), v in newest])],
        )
        return {row[0] for row in cursor.fetchall()}


def _handlers_run(to_apply: list[SyncEvent]) -> None:
    """Run the handlers of a batch's applicable events (sorted by aggregate, then version).

    In waves: wave k holds the k-th event of every aggregate, so one aggregate's versions still apply in
    order while a wave's events of one type with a bulk handler go to it in one call (at most one per
    aggregate, as that handler expects). Everything else runs one by one, in batch order.
    """
    waves: list[list[SyncEvent]] = []
    depth: dict[tuple[str, str], int] = {}
    for event in to_apply:
        key = (event.aggregate_type, event.aggregate_id)
        index = depth[key] = depth.get(key, -1) + 1
        if index == len(waves):
            waves.append([])
        waves[index].append(event)
    for wave in waves:
        bulk: dict[str, list[SyncEvent]] = {}
        for event in wave:
            if bulk_handler_get(event_type=event.event_type) is not None:
                bulk.setdefault(event.event_type, []).append(event)
                continue
            with event_scope(correlation_id=event.correlation_id, traceparent=event.traceparent,
                             span=f"handle {event.event_type}"):
                with applying_synced_event(event):
                    handler_get(event_type=event.event_type)(event=event)
        for event_type, events in bulk.items():
            # One call per type whatever the requests (splitting per request would undo the bulk path under
            # ordinary traffic): it runs in their correlation id and trace when they share one, in none when
            # they do not (each event still carries its own, and the per-event log lines use them).
            first = events[0]
            shared = all(e.correlation_id == first.correlation_id and e.traceparent == first.traceparent
                         for e in events)
            with event_scope(correlation_id=first.correlation_id if shared else "",
                             traceparent=first.traceparent if shared else "", span=f"handle {event_type}",
                             attributes={"strangler.bulk_events": len(events)}):
                with applying_synced_event(first):
                    bulk_handler_get(event_type=event_type)(events=events)


def inbox_cleanup(*, older_than_days: int | None = None) -> int:
    """Forget old inbox rows; a very late redelivery is then still dropped by the version guard."""
    from datetime import timedelta

    days = sync_settings().retention_days if older_than_days is None else older_than_days
    deleted, _ = InboxMessage.objects.filter(received_at__lt=timezone.now() - timedelta(days=days)).delete()
    return deleted


def dead_letter_record(*, message_id: str, queue: str, event_type: str, body: str, error: str, attempts: int):
    return DeadLetter.objects.create(
        message_id=message_id[:64], queue=queue, event_type=event_type[:100], body=body, error=error, attempts=attempts
    )


class SyncConsumer(ConsumerMixin):
    """Consumes this project's queue (``STRANGLER_SYNC["QUEUE"]``) and applies each message via ``inbox_apply``.

    Messages are applied in small batches: received messages carrying up to ``batch`` events (an array
    message is never split; never waiting more than ``max_wait`` seconds for more) share one transaction;
    when the batch fails it is redone one event per savepoint so a failing event rolls back alone; all
    messages are acked after the commit (one ``basic.ack(multiple)`` on AMQP when the
    whole batch committed); event types with a bulk handler are applied many per statement
    (``_handlers_run``). The batch is sorted by (aggregate, version)
    first, so version rows are locked in a fixed order (no deadlock between parallel consumers) and
    versions of one aggregate apply in order. If the commit itself fails the process exits without
    acking and the broker redelivers.
    """

    def __init__(self, connection, *, prefetch: int = 100, batch: int = 50, max_wait: float = 0.02,
                 stop_event: threading.Event | None = None):
        self.connection = connection
        self.prefetch = max(prefetch, batch)
        self.batch = batch
        self.max_wait = max_wait
        self.stop_event = stop_event
        self.config = sync_settings()
        self.handled = 0
        self._pending: list[tuple[object, object]] = []  # (body, message)
        self._pending_events = 0  # events in _pending (an array body carries many): the batch counts these
        self._first_pending_at = 0.0
        self._db_failures = 0
        self._apply_spans: dict[int, object] = {}  # id(SyncEvent) -> its open apply span (tracing on)
        # kombu's virtual transports (sqlite-queue, filesystem) ignore basic.ack's multiple flag: ack one by one
        self._amqp = connection.transport.driver_type == "amqp"

    def get_consumers(self, Consumer, channel):
        topology_declare(channel=channel, include_own_queue=True)
        amqp_reads_buffered(getattr(channel, "connection", None))  # each (re)connection: a new transport
        consumer = Consumer(
            queues=[consumer_queue()],
            callbacks=[self.on_message],
            accept=["json"],
            on_decode_error=self.on_decode_error,
            prefetch_count=self.prefetch,
        )
        return [consumer]

    def run(self, _tokens=1, **kwargs):
        # drain_events wakes every max_wait seconds so a partial batch is flushed promptly
        kwargs.setdefault("safety_interval", self.max_wait)
        return super().run(_tokens, **kwargs)

    def consume(self, *args, **kwargs):
        # kombu's run() reconnects forever on every connection *and channel* error, including a login or a
        # queue declaration the broker refuses: those are not outages and now stop the consumer with the reason
        retried = self.connection.connection_errors + self.connection.channel_errors  # what run() swallows
        try:
            yield from super().consume(*args, **kwargs)
        except retried as exc:
            if broker_outage(exc):
                raise
            raise BrokerRefused(f"{type(exc).__name__}: {exc}") from exc

    def drain(self, *, idle_seconds: float = 0.5, max_seconds: float = 60.0) -> int:
        """Consume until the queue stays empty for `idle_seconds` (tests, benchmarks)."""
        deadline = time.monotonic() + max_seconds
        idle_since = time.monotonic()
        with self.Consumer() as (connection, _channel, _consumers):
            while time.monotonic() < deadline:
                try:
                    connection.drain_events(timeout=self.max_wait)
                    idle_since = time.monotonic()
                except TimeoutError:  # socket.timeout too (an alias since 3.10)
                    self.flush()
                    if time.monotonic() - idle_since > idle_seconds:
                        break
                if self._pending_events >= self.batch:
                    self.flush()
            self.flush()
        return self.handled

    def on_iteration(self):
        # Called before each drain_events: after a message arrived or after max_wait without one.
        if self._pending and (
            self._pending_events >= self.batch or time.monotonic() - self._first_pending_at >= self.max_wait
        ):
            self.flush()
        if self.stop_event is not None and self.stop_event.is_set():
            self.should_stop = True

    def on_connection_revived(self):
        # After a reconnect, buffered messages belong to the dead channel: the broker redelivers them.
        self._pending, self._pending_events = [], 0

    def on_consume_end(self, connection, channel):
        self.flush()

    # kombu calls this for a body it cannot decode (not JSON, wrong content type).
    def on_decode_error(self, message, exc):
        # Buffered like any message: failing it right here could nest inside another _fail's confirm wait
        # (deliveries arrive during it), and the inner wait could take the outer publish's confirm, leaving
        # the outer one waiting forever with the buffered messages unacked.
        self.on_message(_Undecodable(f"undecodable: {exc}"), message)

    def on_message(self, body, message):
        if not self._pending:
            self._first_pending_at = time.monotonic()
        # Only buffer here: flushing happens in on_iteration (or drain), never re-entrantly from inside a
        # flush (waiting for a publisher confirm in _fail may deliver more messages to this callback).
        self._pending.append((body, message))
        self._pending_events += len(body) if isinstance(body, list) else 1

    def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending, self._pending_events = self._pending, [], 0
        # failures: a whole message fails (retried or parked as it is); element_failures: one event of an
        # array fails (retried alone as a single-event message, its siblings still apply)
        parsed, failures, element_failures = [], [], []
        elements: dict[int, dict] = {}  # id(event) -> its envelope, for the events that came in an array
        for body, message in pending:
            if isinstance(body, _Undecodable):
                failures.append((body, message, body))
                continue
            if isinstance(body, list) and body:
                for element in body:
                    try:
                        event = self._apply_span_start(event_parse(envelope=element))
                    except Exception as exc:
                        element_failures.append((element, message, exc))
                        continue
                    elements[id(event)] = element
                    parsed.append((event, message))
                continue
            try:
                if isinstance(body, list):
                    raise SchemaError("message body is an empty array")
                parsed.append((self._apply_span_start(event_parse(envelope=body)), message))
            except Exception as exc:
                failures.append((body, message, exc))
        parsed.sort(key=lambda item: (item[0].aggregate_type, item[0].aggregate_id, item[0].version))
        applied: list[tuple[SyncEvent, object, str]] = []
        try:
            try:
                with transaction.atomic():
                    outcomes = inbox_apply_batch(events=[event for event, _ in parsed])
                applied = [(event, message, outcome)
                           for (event, message), outcome in zip(parsed, outcomes, strict=True)]
            except DATABASE_TRANSIENT:
                raise
            except Exception:
                # Something in the batch failed: redo it one event per savepoint so only the culprit fails.
                logger.info("batch of %s failed; applying one by one", len(parsed), exc_info=True)
                with transaction.atomic():
                    for event, message in parsed:
                        try:
                            with event_scope(correlation_id=event.correlation_id, traceparent=event.traceparent,
                                             span=f"handle {event.event_type}",
                                             attributes={"strangler.applied_alone": True}):
                                outcome = inbox_apply(event=event)  # its atomic() is a savepoint: fails alone
                            applied.append((event, message, outcome))
                        except DATABASE_TRANSIENT:
                            raise
                        except Exception as exc:
                            if id(event) in elements:  # one event of an array: retried alone
                                element_failures.append((event, message, exc))
                            else:
                                failures.append((event, message, exc))
        except DATABASE_TRANSIENT as exc:
            self._apply_spans_end(error=f"requeued: the database is unavailable ({type(exc).__name__})")
            self._database_unavailable(pending, exc)
            return
        # Committed. From here every message is acked exactly once: after its events committed, and after
        # its failed events (or itself) were re-published.
        self._db_failures = 0
        if not failures and not element_failures and len(pending) > 1 and self._amqp:
            # Every message of the batch committed: one basic.ack(multiple) covers them all (AMQP acks
            # every tag up to this one; the batch's last received message has its newest tag).
            pending[-1][1].ack(multiple=True)
            acked = {id(message) for _body, message in pending}
        else:
            acked = set()
        for event, _message, outcome in applied:
            self._observe(event, outcome)
        if self._apply_spans:  # events of the batch that failed (retried or parked below)
            self._apply_spans_end(error="failed: retried alone or parked")
        failed_whole = {id(message) for _body, message, _exc in failures}
        for element, message, exc in element_failures:
            event = element if isinstance(element, SyncEvent) else None
            envelope = element if isinstance(element, dict) else {}
            token = current_request_id.set(event.correlation_id if event else envelope.get("correlation_id") or None)
            try:
                self._retry_or_park(
                    message, body=json.dumps(elements[id(event)] if event is not None else element),
                    event_type=event.event_type if event else str(envelope.get("event_type") or ""),
                    message_id=event.message_id if event else str(envelope.get("message_id") or ""),
                    error=f"{type(exc).__name__}: {exc}",
                )
            finally:
                current_request_id.reset(token)
        for _body, message in pending:
            if id(message) not in acked and id(message) not in failed_whole:
                acked.add(id(message))
                message.ack()
        for body, message, exc in failures:
            event = body if isinstance(body, SyncEvent) else None
            envelope = body if isinstance(body, dict) else {}
            token = current_request_id.set(event.correlation_id if event else envelope.get("correlation_id") or None)
            try:
                self._fail(
                    message, body_text=_raw_text(message),
                    event_type=event.event_type if event else str(envelope.get("event_type") or ""),
                    message_id=event.message_id if event else str(envelope.get("message_id") or ""),
                    error=str(exc) if isinstance(exc, _Undecodable) else f"{type(exc).__name__}: {exc}",
                )
            finally:
                current_request_id.reset(token)

    def _database_unavailable(self, pending: list, exc: Exception) -> None:
        """The database is down or refused (restart, failover, deadlock): nothing was applied, so give every
        message of the batch back to the broker untouched (no attempt counted) and retry after a pause."""
        self._db_failures += 1
        delay = min(5.0, 0.2 * 2 ** self._db_failures)
        logger.warning("database unavailable (%s); %s message(s) requeued, retrying in %.1fs", exc, len(pending),
                       delay)
        for _body, message in pending:
            message.requeue()
        connection.close()
        time.sleep(delay)

    def _observe(self, event: SyncEvent, outcome: str) -> None:
        queue = self.config.queue
        self.handled += 1
        metrics.CONSUMED.labels(queue, event.event_type, outcome).inc()
        if outcome == APPLIED:
            metrics.LAG.labels(queue).observe(max(0.0, (timezone.now() - event.occurred_at).total_seconds()))
        span = self._apply_spans.pop(id(event), None)
        if span is not None:  # the log line in the apply span itself, which ends with it
            span.set_attribute("strangler.outcome", outcome)
            token = current_request_id.set(event.correlation_id or None)
            try:
                with span_scope(span):
                    self._log_outcome(event, outcome)
            finally:
                current_request_id.reset(token)
                span.end()
            return
        with event_scope(correlation_id=event.correlation_id, traceparent=event.traceparent):
            self._log_outcome(event, outcome)

    @staticmethod
    def _log_outcome(event: SyncEvent, outcome: str) -> None:
        logger.info(
            "sync %s %s %s:%s v%s", outcome, event.event_type, event.aggregate_type, event.aggregate_id,
            event.version, extra={"message_id": event.message_id, "outcome": outcome, "origin": event.origin},
        )

    def _apply_span_start(self, event: SyncEvent) -> SyncEvent:
        """With tracing on, an event whose envelope names its write's trace gets a span covering its apply, from
        the batch's start to after its commit; the event returned carries that span's traceparent, so its
        handler's span and log lines are the apply span's children."""
        if not event.traceparent or not tracing_on():
            return event
        span = span_start(name=f"consume apply {event.event_type}", parent=traceparent_parse(event.traceparent),
                          kind="consumer", attributes={
                              "messaging.system": "strangler_sync", "messaging.operation.type": "process",
                              "messaging.destination.name": self.config.queue, "messaging.message.id": event.message_id,
                              "strangler.aggregate": f"{event.aggregate_type}:{event.aggregate_id}",
                              "strangler.version": event.version})
        event = dataclasses.replace(event, traceparent=span_trace_context(span).traceparent)
        self._apply_spans[id(event)] = span
        return event

    def _apply_spans_end(self, *, error: str) -> None:
        spans, self._apply_spans = self._apply_spans, {}
        for span in spans.values():
            span_failed(span, error)
            span.end()

    def _fail(self, message, *, body_text: str, event_type: str, message_id: str, error: str) -> None:
        """A whole message failed: re-publish it (or park it) as it is, then ack it."""
        self._retry_or_park(message, body=message.body, body_text=body_text, event_type=event_type,
                            message_id=message_id, error=error)
        # Re-published first, acked second: a crash in between means one more (harmless) delivery.
        message.ack()

    def _retry_or_park(self, message, *, body, event_type: str, message_id: str, error: str,
                       body_text: str | None = None) -> None:
        """Re-publish `body` to this queue with ``x-sync-attempts`` + 1 (the attempts of `message`, which
        carried it), or to the DLQ with a DeadLetter row after CONSUMER_MAX_ATTEMPTS. Does not ack."""
        queue = self.config.queue
        attempts = int((message.headers or {}).get(ATTEMPTS_HEADER) or 0) + 1
        producer = Producer(message.channel)
        if attempts < self.config.consumer_max_attempts:
            logger.warning("sync message failed (attempt %s), retrying: %s", attempts, error,
                           extra={"message_id": message_id, "event_type": event_type})
            self._republish(producer, message, body=body, routing_key=queue, headers={ATTEMPTS_HEADER: attempts})
            outcome = "failed"
        else:
            logger.error("sync message dead-lettered after %s attempts: %s", attempts, error,
                         extra={"message_id": message_id, "event_type": event_type})
            dlq = dead_letter_queue(name=self.config.dead_letter_queue)
            dlq(message.channel).declare()
            self._republish(producer, message, body=body, routing_key=dlq.name,
                            headers={ATTEMPTS_HEADER: attempts, ERROR_HEADER: error[:1000]})
            dead_letter_record(message_id=message_id, queue=queue, event_type=event_type,
                               body=body if body_text is None else body_text, error=error, attempts=attempts)
            outcome = "dead_lettered"
        metrics.CONSUMED.labels(queue, event_type or "?", outcome).inc()

    @staticmethod
    def _republish(producer: Producer, message, *, body, routing_key: str, headers: dict) -> None:
        producer.publish(
            body,
            exchange="",
            routing_key=routing_key,
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            headers={**(message.headers or {}), **headers},
            delivery_mode=2,
        )


class _Undecodable(Exception):
    """Stands in for the body of a message kombu could not decode (buffered with the others, failed in flush)."""


def _raw_text(message) -> str:
    body = message.body
    if isinstance(body, bytes):
        return body.decode("utf-8", errors="replace")
    return body if isinstance(body, str) else json.dumps(body, default=str)


