"""The relay: claims pending outbox rows, publishes them with publisher confirms, marks them published.

Claiming: one transaction per batch. On PostgreSQL ``SELECT .. FOR UPDATE SKIP LOCKED`` lets several
relays run side by side without ever taking the same row; rows stay locked while they are published
and are marked published in the same transaction, only after the broker confirmed them. A relay
killed mid-batch rolls back: its rows are pending again and are re-published (the consumer's inbox
drops the duplicates). SQLite has no row locks: the projects open every transaction with BEGIN IMMEDIATE
(servicekit.env), so a batch holds the database write lock and relays simply take turns.

Ordering: rows are claimed in id order, which per aggregate is version order (the version row stays
locked until the write commits). Across parallel relays or retries order can still change, so the
consumer keeps a version guard per aggregate and events carry full state: applying the newest
version and dropping older ones gives the same result as in-order delivery.
"""

from __future__ import annotations

import logging
import threading
import time

from django.db import InterfaceError, OperationalError, transaction
from django.db import connection as db_connection
from django.utils import timezone
from kombu import Producer

from strangler_sync import metrics
from strangler_sync.broker import (
    ATTEMPTS_HEADER,
    BatchConfirms,
    broker_connection,
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
    return {
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
            self.producer = Producer(channel, exchange=sync_exchange(), serializer="json")
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
        """Claim and publish one batch; returns the number of rows confirmed by the broker."""
        config = sync_settings()
        with transaction.atomic():
            claim = OutboxEvent.objects.filter(
                status=OutboxEvent.Status.PENDING, next_attempt_at__lte=timezone.now()
            ).order_by("id")
            if db_connection.features.has_select_for_update_skip_locked:
                claim = claim.select_for_update(skip_locked=True)
            rows = list(claim[: config.batch_size])
            if not rows:
                return 0
            confirmed: list[int] = []
            failed: OutboxEvent | None = rows[0]  # a connection failure counts against the first row
            try:
                producer = self._producer()
                sent = []
                for event in rows:
                    failed = event
                    self._publish_one(producer, event)
                    sent.append(event.id)
                if self.confirms is not None:
                    failed = rows[0]
                    self.confirms.wait(timeout=self.confirm_timeout)
                confirmed = sent
                failed = None
            except Exception as exc:  # broker down, nack, timeout: retry later with backoff
                self.close()
                metrics.PUBLISH_FAILURES.labels(config.origin).inc()
                if failed is not None:
                    failed = outbox_mark_failed(event=failed, error=f"{type(exc).__name__}: {exc}")
                    if failed.status == OutboxEvent.Status.DEAD:
                        metrics.DEAD_ROWS.labels(config.origin).inc()
                        logger.error("outbox row %s is dead after %s attempts", failed.id, failed.attempts)
                logger.warning("publish failed after %s of %s rows: %s", len(confirmed), len(rows), exc)
            outbox_mark_published(event_ids=confirmed)
        for event in rows[: len(confirmed)]:
            metrics.PUBLISHED.labels(config.origin, event.event_type).inc()
        return len(confirmed)

    def _publish_one(self, producer: Producer, event: OutboxEvent) -> None:
        producer.publish(
            event_envelope(event),
            routing_key=routing_key_for(aggregate_type=event.aggregate_type, event_type=event.event_type),
            message_id=str(event.message_id),
            correlation_id=event.correlation_id or None,
            headers={ATTEMPTS_HEADER: 0},
            delivery_mode=2,
            retry=False,  # a failure is handled by the outbox's own backoff, not by blocking here
        )
        if self.confirms is not None:
            self.confirms.published += 1

    def drain(self, *, max_batches: int = 1000) -> int:
        """Publish batches until nothing is due (bounded, for the Celery task)."""
        total = 0
        for _ in range(max_batches):
            published = self.publish_batch()
            total += published
            if published == 0:
                break
        return total


def relay_gauges_update() -> None:
    origin = sync_settings().origin
    stats = outbox_stats()
    metrics.OUTBOX_BACKLOG.labels(origin).set(stats["pending"])
    metrics.OUTBOX_OLDEST_PENDING_AGE.labels(origin).set(stats["oldest_pending_age_seconds"])
    metrics.OUTBOX_DEAD.labels(origin).set(stats["dead"])


def relay_run(*, stop: threading.Event | None = None, interval: float = 0.2, once: bool = False) -> int:
    """The `sync_relay` loop: publish while there is work, poll every `interval` seconds when idle.

    A database outage (restart, failover) does not end the loop: the connection is dropped and the
    loop retries with backoff; the batch in flight rolled back, so its rows are published again.
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
            except (OperationalError, InterfaceError) as exc:
                failures += 1
                delay = min(5.0, 0.2 * 2 ** failures)
                logger.warning("database unavailable (%s); relay retries in %.1fs", exc, delay)
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
