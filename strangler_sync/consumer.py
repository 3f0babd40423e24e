"""The inbox: applies received events exactly once per message_id and never older than what was applied.

``inbox_apply`` runs one transaction per message: it locks the aggregate's AppliedVersion row, skips
a message whose message_id is already in the inbox (duplicate) or whose version is not newer than the
applied one (stale), otherwise runs the registered handler and records both rows. The broker message
is acked only after that transaction committed, so a crash at any point means redelivery, and
redelivery is harmless.

``SyncConsumer`` (``manage.py sync_consume``) is a kombu ConsumerMixin rather than a Celery worker:
it needs per-message ack after commit, the raw message for dead-lettering, and nothing of Celery's
task protocol (the events are plain JSON envelopes any language can publish or read).

Failures (malformed JSON, envelope or payload not matching the schema, unknown event type, handler
error) are retried by re-publishing the message to this queue with ``x-sync-attempts`` + 1 and acking
the original; after CONSUMER_MAX_ATTEMPTS it goes to ``<QUEUE>.dlq`` with the error in ``x-sync-error``
and a DeadLetter row (admin). Delivery guarantees by transport: RabbitMQ redelivers unacked messages
of a consumer that died; kombu's filesystem transport removes the file on receipt, so a consumer
killed -9 between receipt and ack loses that message: ``sync_verify --repair`` finds and re-emits it.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone
from kombu import Producer
from kombu.mixins import ConsumerMixin

from servicekit.request_id import current_request_id
from strangler_sync import metrics
from strangler_sync.broker import (
    ATTEMPTS_HEADER,
    ERROR_HEADER,
    consumer_queue,
    dead_letter_queue,
    topology_declare,
)
from strangler_sync.conf import sync_settings
from strangler_sync.errors import SchemaError
from strangler_sync.handlers import SyncEvent, applying_synced_event, handler_get
from strangler_sync.models import AppliedVersion, DeadLetter, InboxMessage
from strangler_sync.schemas import payload_validate

logger = logging.getLogger(__name__)

APPLIED = "applied"
DUPLICATE = "duplicate"
STALE = "stale"
OWN = "own"  # an event this project emitted itself (its queue matches its own routing keys): nothing to do

_ENVELOPE = {
    "message_id": str, "event_type": str, "aggregate_type": str, "aggregate_id": str, "version": int,
    "schema_version": int, "payload": dict, "occurred_at": str, "origin": str,
}


class UnknownEventType(SchemaError):
    code = "unknown_event_type"


def event_parse(*, envelope) -> SyncEvent:
    """Validate an envelope (and its payload against the schema) into a SyncEvent; SchemaError otherwise."""
    if not isinstance(envelope, dict):
        raise SchemaError("message body is not a JSON object")
    problems = {k: f"expected {t.__name__}" for k, t in _ENVELOPE.items()
                if not isinstance(envelope.get(k), t) or isinstance(envelope.get(k), bool)}
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
    )


def inbox_apply(*, event: SyncEvent) -> str:
    """Apply one event in one transaction; returns applied, duplicate, stale or own. Handler errors propagate."""
    if event.origin == sync_settings().origin:
        return OWN
    handler = handler_get(event_type=event.event_type)
    if handler is None:
        raise UnknownEventType(f"no handler registered for {event.event_type!r}")
    with transaction.atomic():
        # Lock order: the aggregate's version row first, so duplicates and versions of one aggregate serialise.
        applied, _ = AppliedVersion.objects.select_for_update().get_or_create(
            aggregate_type=event.aggregate_type, aggregate_id=event.aggregate_id
        )
        if InboxMessage.objects.filter(message_id=event.message_id).exists():
            return DUPLICATE
        outcome = STALE if event.version <= applied.version else APPLIED
        try:
            with transaction.atomic():
                InboxMessage.objects.create(
                    message_id=event.message_id,
                    event_type=event.event_type,
                    aggregate_type=event.aggregate_type,
                    aggregate_id=event.aggregate_id,
                    version=event.version,
                    origin=event.origin,
                    correlation_id=event.correlation_id,
                    outcome=outcome,
                    occurred_at=event.occurred_at,
                )
        except IntegrityError:  # a concurrent consumer recorded it first
            return DUPLICATE
        if outcome == STALE:
            return STALE
        with applying_synced_event(event):
            handler(event=event)
        applied.version = event.version
        applied.save(update_fields=["version", "updated_at"])
    return APPLIED


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
    """Consumes this project's queue (``STRANGLER_SYNC["QUEUE"]``) and applies each message via ``inbox_apply``."""

    def __init__(self, connection, *, prefetch: int = 50, stop_event: threading.Event | None = None):
        self.connection = connection
        self.prefetch = prefetch
        self.stop_event = stop_event
        self.config = sync_settings()
        self.handled = 0

    def get_consumers(self, Consumer, channel):
        topology_declare(channel=channel, include_own_queue=True)
        consumer = Consumer(
            queues=[consumer_queue()],
            callbacks=[self.on_message],
            accept=["json"],
            on_decode_error=self.on_decode_error,
            prefetch_count=self.prefetch,
        )
        return [consumer]

    def drain(self, *, idle_seconds: float = 0.5, max_seconds: float = 60.0) -> int:
        """Consume until the queue stays empty for `idle_seconds` (tests, benchmarks, ``--until-idle``)."""
        import time

        deadline = time.monotonic() + max_seconds
        with self.Consumer() as (connection, _channel, _consumers):
            while time.monotonic() < deadline:
                try:
                    connection.drain_events(timeout=idle_seconds)
                except TimeoutError:  # socket.timeout too (an alias since 3.10)
                    break
        return self.handled

    def on_iteration(self):
        if self.stop_event is not None and self.stop_event.is_set():
            self.should_stop = True

    # kombu calls this for a body it cannot decode (not JSON, wrong content type).
    def on_decode_error(self, message, exc):
        self._fail(message, body_text=_raw_text(message), event_type="", message_id="", error=f"undecodable: {exc}")

    def on_message(self, body, message):
        queue = self.config.queue
        envelope = body if isinstance(body, dict) else None
        message_id = str((envelope or {}).get("message_id") or "")
        event_type = str((envelope or {}).get("event_type") or "")
        token = current_request_id.set((envelope or {}).get("correlation_id") or None)
        try:
            try:
                event = event_parse(envelope=body)
                outcome = inbox_apply(event=event)
            except Exception as exc:
                self._fail(message, body_text=_raw_text(message), event_type=event_type, message_id=message_id,
                           error=f"{type(exc).__name__}: {exc}")
                return
            message.ack()
            self.handled += 1
            metrics.CONSUMED.labels(queue, event.event_type, outcome).inc()
            if outcome == APPLIED:
                metrics.LAG.labels(queue).observe(max(0.0, (timezone.now() - event.occurred_at).total_seconds()))
            logger.info(
                "sync %s %s %s:%s v%s", outcome, event.event_type, event.aggregate_type, event.aggregate_id,
                event.version, extra={"message_id": event.message_id, "outcome": outcome, "origin": event.origin},
            )
        finally:
            current_request_id.reset(token)

    def _fail(self, message, *, body_text: str, event_type: str, message_id: str, error: str) -> None:
        queue = self.config.queue
        attempts = int((message.headers or {}).get(ATTEMPTS_HEADER) or 0) + 1
        producer = Producer(message.channel)
        if attempts < self.config.consumer_max_attempts:
            logger.warning("sync message failed (attempt %s), retrying: %s", attempts, error,
                           extra={"message_id": message_id, "event_type": event_type})
            self._republish(producer, message, routing_key=queue, headers={ATTEMPTS_HEADER: attempts})
            outcome = "failed"
        else:
            logger.error("sync message dead-lettered after %s attempts: %s", attempts, error,
                         extra={"message_id": message_id, "event_type": event_type})
            dlq = dead_letter_queue(name=self.config.dead_letter_queue)
            dlq(message.channel).declare()
            self._republish(producer, message, routing_key=dlq.name,
                            headers={ATTEMPTS_HEADER: attempts, ERROR_HEADER: error[:1000]})
            dead_letter_record(message_id=message_id, queue=queue, event_type=event_type, body=body_text,
                               error=error, attempts=attempts)
            outcome = "dead_lettered"
        # Re-published first, acked second: a crash in between means one more (harmless) delivery.
        message.ack()
        metrics.CONSUMED.labels(queue, event_type or "?", outcome).inc()

    @staticmethod
    def _republish(producer: Producer, message, *, routing_key: str, headers: dict) -> None:
        producer.publish(
            message.body,
            exchange="",
            routing_key=routing_key,
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            headers={**(message.headers or {}), **headers},
            delivery_mode=2,
        )


def _raw_text(message) -> str:
    body = message.body
    if isinstance(body, bytes):
        return body.decode("utf-8", errors="replace")
    return body if isinstance(body, str) else json.dumps(body, default=str)


def consume_run(*, stop_event: threading.Event | None = None, prefetch: int = 50) -> SyncConsumer:
    from strangler_sync.broker import broker_connection

    with broker_connection() as connection:
        consumer = SyncConsumer(connection, prefetch=prefetch, stop_event=stop_event)
        consumer.run()
    return consumer
