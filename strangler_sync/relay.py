"""The relay: claims pending outbox rows, publishes them with publisher confirms, marks them published.

Claiming: one transaction per batch. On PostgreSQL ``SELECT .. FOR UPDATE SKIP LOCKED`` lets several
relays run side by side without ever taking the same row; rows stay locked while they are published
and are marked published in the same transaction, only after the broker confirmed them. A relay
killed mid-batch rolls back: its rows are pending again and are re-published (the consumer's inbox
drops the duplicates). SQLite has no row locks: the projects open every transaction with BEGIN IMMEDIATE
(servicekit.env), so a batch holds the database write lock and relays simply take turns.

Failures: a broker outage (connection refused or lost, confirm timeout) charges no row an attempt; the
loop backs off with jitter and retries. Any other error (a bug, a missing transport library, a login the
broker refuses: ``broker.broker_outage``) ends the loop with that error instead of retrying forever.
Rows the broker refuses (nack) are charged one attempt each,
retried with exponential backoff and jitter, and marked dead after MAX_ATTEMPTS (admin: requeue).

Messages: the claimed rows are grouped by routing key (claim order kept inside a group) and each group is
sent as messages of up to MESSAGE_BATCH events, whose body is a JSON array of envelopes; a message of one
event is the envelope object itself (so MESSAGE_BATCH = 1 sends exactly one envelope per message). The
broker's cost is per message (persisting, routing to every bound queue, delivering), not per event. Rows
are marked published only once the message carrying them is confirmed; a nack refuses all its rows.

Ordering: rows are claimed in id order, which per aggregate is version order (the version row stays
locked until the write commits). Across parallel relays or retries order can still change, so the
consumer keeps a version guard per aggregate and events carry full state: applying the newest
version and dropping older ones gives the same result as in-order delivery. Batching messages relies on
the same guarantee: inside a message the claim order is kept, but one aggregate's events of different
routing keys (product.created, product.updated, product.deleted) travel in different messages and may
arrive in another order; an older version arriving after a newer one is dropped as stale.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass

from django.db import InterfaceError, OperationalError, transaction
from django.db import connection as db_connection
from django.utils import timezone
from kombu import Producer

from servicekit.trace_context import traceparent_parse
from servicekit.tracing import now_ns, span_failed, span_start, tracing_on
from strangler_sync import metrics
from strangler_sync.broker import (
    ATTEMPTS_HEADER,
    BatchConfirms,
    BrokerUnavailable,
    amqp_reads_buffered,
    broker_connection,
    broker_outage,
    routing_key_for,
    sync_exchange,
    topology_declare,
)
from strangler_sync.conf import sync_settings
from strangler_sync.models import OutboxEvent
from strangler_sync.selectors import outbox_stats
from strangler_sync.services import outbox_mark_failed, outbox_mark_published

logger = logging.getLogger(__name__)


def event_envelope(event: OutboxEvent) -> dict:
    """The wire format; ``traceparent`` is optional (only when the write had one), old envelopes lack it;
    ``epoch`` (the owner's ownership epoch) is optional too (capture triggers and old rows have none)."""
    envelope = {
        "message_id": str(event.message_id),
        "event_type": event.event_type,
        "aggregate_type": event.aggregate_type,
        "aggregate_id": event.aggregate_id,
        "version": event.version,
        "schema_version": event.schema_version,
        "payload": event.payload,
        "occurred_at": event.occurred_at.isoformat(),
        "origin": event.origin,
        "correlation_id": event.correlation_id,
    }
    if event.traceparent:
        envelope["traceparent"] = event.traceparent
    if getattr(event, "epoch", None) is not None:
        envelope["epoch"] = event.epoch
    return envelope


@dataclass(slots=True)
class ClaimedEvent:
    """An outbox row claimed for publishing, its envelope already serialised."""

    id: int
    event_type: str
    routing_key: str
    message_id: str
    correlation_id: str
    body: str
    traceparent: str = ""  # the write's (its outbox span's), as in the envelope: the relay's span is its child


_CLAIM_FIELDS = ["id", "message_id", "event_type", "aggregate_type", "aggregate_id", "version", "schema_version",
                 "occurred_at", "origin", "correlation_id", "traceparent", "epoch"]


def _claimed(row: tuple, payload_json: str) -> ClaimedEvent:
    """A ClaimedEvent from the _CLAIM_FIELDS values: event_envelope as JSON, the payload spliced in as the
    JSON text it already is."""
    id_, message_id, event_type, aggregate_type, aggregate_id, version, schema_version, occurred_at, origin, \
        correlation_id, traceparent, epoch = row
    message_id = str(message_id)
    head = {
        "message_id": message_id, "event_type": event_type, "aggregate_type": aggregate_type,
        "aggregate_id": aggregate_id, "version": version, "schema_version": schema_version,
        "occurred_at": occurred_at.isoformat(), "origin": origin, "correlation_id": correlation_id,
    }
    if traceparent:  # as event_envelope: optional
        head["traceparent"] = traceparent
    if epoch is not None:  # as event_envelope: optional (capture triggers and old rows have none)
        head["epoch"] = epoch
    head = json.dumps(head)
    return ClaimedEvent(
        id=id_, event_type=event_type, message_id=message_id, correlation_id=correlation_id, traceparent=traceparent,
        routing_key=routing_key_for(aggregate_type=aggregate_type, event_type=event_type),
        body=f'{head[:-1]}, "payload": {payload_json}}}',
    )


def messages_group(*, rows: list[ClaimedEvent], per_message: int) -> list[list[ClaimedEvent]]:
    """Split claimed rows into messages: by routing key (first-seen order), claim order kept inside each,
    at most `per_message` rows per message. One per message keeps the claim order, as before batching."""
    if per_message <= 1:
        return [[row] for row in rows]
    groups: dict[str, list[ClaimedEvent]] = {}
    for row in rows:
        groups.setdefault(row.routing_key, []).append(row)
    return [group[start:start + per_message] for group in groups.values()
            for start in range(0, len(group), per_message)]


def message_body(*, rows: list[ClaimedEvent]) -> str:
    """One row: its envelope object; several: a JSON array of them (joined as text, nothing re-parsed)."""
    if len(rows) == 1:
        return rows[0].body
    return "[" + ", ".join(row.body for row in rows) + "]"


def outbox_claim(*, limit: int) -> list[ClaimedEvent]:
    """Lock up to `limit` due pending rows, oldest first, for the caller's transaction (rows other relays
    hold are skipped) and return them ready to publish.

    PostgreSQL: one raw statement; the payload is read as the JSON text it is stored as and spliced into
    the envelope, instead of being parsed into Python and serialised again, and no model is instantiated.
    Elsewhere the ORM (SQLite has no row locks: the transaction's write lock serialises relays).
    """
    now = timezone.now()
    if db_connection.vendor == "postgresql":
        table = db_connection.ops.quote_name(OutboxEvent._meta.db_table)
        with db_connection.cursor() as cursor:
            # status = 'pending' as a literal: it must match the partial index outbox_pending_idx
            cursor.execute(
                f"SELECT {', '.join(_CLAIM_FIELDS)}, payload::text FROM {table} WHERE status = 'pending' "
                "AND next_attempt_at <= %s ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                [now, limit],
            )
            return [_claimed(row[:-1], row[-1]) for row in cursor.fetchall()]
    claim = OutboxEvent.objects.filter(status=OutboxEvent.Status.PENDING, next_attempt_at__lte=now).order_by("id")
    if db_connection.features.has_select_for_update_skip_locked:
        claim = claim.select_for_update(skip_locked=True)
    return [_claimed(tuple(getattr(event, name) for name in _CLAIM_FIELDS), json.dumps(event.payload))
            for event in claim[:limit]]


class Relay:
    """Publishes outbox batches over one broker connection (declares the topology once per connection)."""

    confirm_timeout = 30.0

    def __init__(self, *, url: str | None = None):
        self.url = url
        self.connection = None
        self.producer: Producer | None = None
        self.confirms: BatchConfirms | None = None

    def _producer(self) -> Producer:
        if self.producer is None:
            connection = broker_connection(url=self.url)  # lazy: nothing is connected yet
            is_amqp = connection.transport.driver_type == "amqp"
            if is_amqp:
                # per-batch confirms (BatchConfirms) replace kombu's per-message confirm_publish
                options = {k: v for k, v in connection.transport_options.items() if k != "confirm_publish"}
                connection = broker_connection(url=self.url, transport_options=options)
            self.connection = connection
            channel = connection.channel()
            topology_declare(channel=channel)
            if is_amqp:
                self.confirms = BatchConfirms(channel)
                amqp_reads_buffered(connection.connection)  # the broker's acks: one recv for many
            # auto_declare off: declared above; a declare inside a buffered batch would wait for its own reply
            self.producer = Producer(channel, exchange=sync_exchange(), serializer="json", auto_declare=False)
        return self.producer

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.release()
            except Exception:  # closing a broken connection may raise; it is gone either way
                logger.debug("error closing the broker connection", exc_info=True)
        self.connection = None
        self.producer = None
        self.confirms = None

    def publish_batch(self) -> int:
        """Claim and publish one batch; returns the number of rows the broker confirmed.

        Raises BrokerUnavailable when the broker cannot be reached or drops the connection: the batch's
        transaction rolls back and no row is charged an attempt (an outage is not the rows' fault; the
        caller backs off). Rows the broker *refuses* (a nack) are charged an attempt, retried with
        exponential backoff and jitter, and marked dead after MAX_ATTEMPTS.
        """
        config = sync_settings()
        with transaction.atomic():
            rows = outbox_claim(limit=config.batch_size)
            if not rows:
                return 0
            messages = messages_group(rows=rows, per_message=config.message_batch)
            started_ns = now_ns() if tracing_on() else 0
            try:
                producer = self._producer()
                first_tag = self.confirms.published + 1 if self.confirms is not None else 1
                with self.confirms.frames_buffered() if self.confirms is not None else contextlib.nullcontext():
                    for message in messages:
                        self._publish_message(producer, message)
                nacked = self.confirms.wait(timeout=self.confirm_timeout) if self.confirms is not None else set()
            except Exception as exc:  # nothing is known confirmed: the batch rolls back
                self.close()
                metrics.PUBLISH_FAILURES.labels(config.origin).inc()
                if not broker_outage(exc):  # a bug or misconfiguration: retrying would loop on it forever
                    raise
                raise BrokerUnavailable(f"{type(exc).__name__}: {exc}") from exc
            # a nacked message refuses every row it carried
            refused_ids = {row.id for tag in nacked for row in messages[tag - first_tag]}
            for event in OutboxEvent.objects.filter(id__in=refused_ids).order_by("id") if refused_ids else ():
                event = outbox_mark_failed(event=event, error="refused by the broker (nack)")
                if event.status == OutboxEvent.Status.DEAD:
                    metrics.DEAD_ROWS.labels(config.origin).inc()
                    logger.error("outbox row %s is dead after %s attempts", event.id, event.attempts)
            confirmed = [row for row in rows if row.id not in refused_ids]
            outbox_mark_published(event_ids=[row.id for row in confirmed])
        if refused_ids:
            metrics.PUBLISH_FAILURES.labels(config.origin).inc()
            logger.warning("the broker refused %s of %s rows; they are retried with backoff", len(refused_ids),
                           len(rows))
        for event_type, n in Counter(row.event_type for row in confirmed).items():
            metrics.PUBLISHED.labels(config.origin, event_type).inc(n)
        if started_ns:
            relay_spans_record(rows=rows, refused_ids=refused_ids, started_ns=started_ns)
        return len(confirmed)

    def _publish_message(self, producer: Producer, rows: list[ClaimedEvent]) -> None:
        # the bodies are JSON already (see outbox_claim): kombu sends them as they are
        first = rows[0]
        single = len(rows) == 1
        correlation_ids = {row.correlation_id for row in rows}
        producer.publish(
            message_body(rows=rows),
            routing_key=first.routing_key,
            content_type="application/json",
            content_encoding="utf-8",
            # an array's events keep their own message_ids inside; the message gets a fresh one
            message_id=first.message_id if single else str(uuid.uuid4()),
            correlation_id=(first.correlation_id or None) if len(correlation_ids) == 1 else None,
            headers={ATTEMPTS_HEADER: 0},
            delivery_mode=2,
            retry=False,  # a failure is handled by the outbox's own backoff, not by blocking here
        )
        if self.confirms is not None:
            self.confirms.published += 1

    def drain(self, *, max_batches: int = 1000) -> int:
        """Publish batches until nothing is due (bounded, for the Celery task; an outage ends it early)."""
        total = 0
        for _ in range(max_batches):
            try:
                published = self.publish_batch()
            except BrokerUnavailable as exc:
                logger.warning("broker unavailable (%s); the periodic sweep will retry", exc)
                break
            total += published
            if published == 0:
                break
        return total


def relay_spans_record(*, rows: list[ClaimedEvent], refused_ids: set[int], started_ns: int) -> None:
    """One span per traced row of a published batch, child of the row's write: from the batch's first publish to
    its commit (the rows of a batch share the broker round trip and the transaction, so they share the times)."""
    ended_ns = now_ns()
    for row in rows:
        parent = traceparent_parse(row.traceparent) if row.traceparent else None
        if parent is None:
            continue
        span = span_start(name=f"relay publish {row.event_type}", parent=parent, kind="producer", start_ns=started_ns,
                          attributes={"messaging.system": "strangler_sync", "messaging.operation.type": "send",
                                      "messaging.destination.name": row.routing_key,
                                      "messaging.message.id": row.message_id,
                                      "messaging.batch.message_count": len(rows)})
        if row.id in refused_ids:
            span_failed(span, "refused by the broker (nack)")
        span.end(ended_ns)


def relay_gauges_update() -> None:
    origin = sync_settings().origin
    stats = outbox_stats()
    metrics.OUTBOX_BACKLOG.labels(origin).set(stats["pending"])
    metrics.OUTBOX_OLDEST_PENDING_AGE.labels(origin).set(stats["oldest_pending_age_seconds"])
    metrics.OUTBOX_DEAD.labels(origin).set(stats["dead"])


def relay_run(*, stop: threading.Event | None = None, interval: float = 0.02, once: bool = False) -> int:
    """The `sync_relay` loop: publish while there is work, poll every `interval` seconds when idle.

    A database or broker outage (restart, failover) does not end the loop: it retries with backoff and
    jitter; the batch in flight rolled back, so its rows are published again (duplicates are dropped by
    the consumers' inbox).
    """
    stop = stop or threading.Event()
    relay = Relay()
    total = 0
    last_gauges = 0.0
    failures = 0
    try:
        while not stop.is_set():
            try:
                published = relay.publish_batch()
                if time.monotonic() - last_gauges > 5:
                    relay_gauges_update()
                    last_gauges = time.monotonic()
                failures = 0
            except (OperationalError, InterfaceError, BrokerUnavailable) as exc:
                failures += 1
                delay = min(sync_settings().backoff_max, 5.0, 0.2 * 2 ** failures) * random.uniform(0.5, 1.0)
                what = "broker" if isinstance(exc, BrokerUnavailable) else "database"
                logger.warning("%s unavailable (%s); relay retries in %.1fs", what, exc, delay)
                if what == "database":
                    db_connection.close()
                stop.wait(delay)
                continue
            total += published
            if once and published == 0:
                break
            if published == 0:
                stop.wait(interval)
    finally:
        relay.close()
    return total
