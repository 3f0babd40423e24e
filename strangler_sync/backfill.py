"""Backfill: stream every row of an aggregate as ``<aggregate>.snapshot`` events, resumable, safe with live writes.

Per batch (keyset by id): read the batch's ids, then their current versions (rows never evented get
version 1), *then* the rows. Reading the version before the state means a snapshot may carry newer
state than its version says, never older: if the live event of that newer version arrives later it
is still applied; if it arrived first the snapshot is stale and dropped. Either way the follower ends
on the newest state.

Modes: ``outbox`` (default) writes the snapshots into the outbox in the batch's transaction together
with the checkpoint, and the relay publishes them; ``direct`` publishes straight to the broker with
confirms (faster, no outbox rows) and checkpoints after the broker confirmed the batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone
from kombu import Producer

from servicekit.request_id import get_request_id
from strangler_sync.broker import (
    ATTEMPTS_HEADER,
    BatchConfirms,
    broker_connection,
    routing_key_for,
    sync_exchange,
    topology_declare,
)
from strangler_sync.conf import sync_settings
from strangler_sync.events import snapshot_event_type
from strangler_sync.models import BackfillCheckpoint
from strangler_sync.relay import event_envelope
from strangler_sync.schemas import payload_validate
from strangler_sync.services import OutboxRow, aggregate_versions_ensure, outbox_insert_many
from strangler_sync.snapshots import aggregate_model, aggregate_payload, canonical_row


@dataclass
class BackfillResult:
    aggregate: str
    emitted: int
    last_id: int | None
    seconds: float


def _payloads(*, aggregate_type: str, ids: list[int]) -> dict[int, dict]:
    config = sync_settings().aggregate(aggregate_type)
    manager = aggregate_model(config)._default_manager
    # the id range, not `__in` 2,000 ids (one placeholder each); rows created since the id scan are ignored
    rows = manager.filter(**{f"{config.id_field}__gte": ids[0], f"{config.id_field}__lte": ids[-1]})
    if config.snapshot_path:
        return {getattr(r, config.id_field): aggregate_payload(aggregate_type=aggregate_type, instance=r) for r in rows}
    attrs = sorted(set(config.fields.values()) | {config.id_field})
    return {v[config.id_field]: canonical_row(config=config, values=v) for v in rows.values(*attrs)}


def _snapshot_events(*, aggregate_type: str, ids: list[int]) -> list[OutboxRow]:
    """Unsaved outbox rows (snapshots) for the ids that still exist, version read before state."""
    config = sync_settings()
    event_type = snapshot_event_type(aggregate_type)
    versions = aggregate_versions_ensure(aggregate_type=aggregate_type, aggregate_ids=[str(i) for i in ids])
    payloads = _payloads(aggregate_type=aggregate_type, ids=ids)
    now = timezone.now()
    correlation_id = get_request_id() or ""
    events = []
    for row_id in ids:
        payload = payloads.get(row_id)
        if payload is None:  # deleted between the id scan and the read: its delete event covers it
            continue
        payload_validate(event_type=event_type, schema_version=1, payload=payload)
        events.append(
            OutboxRow(
                event_type=event_type, aggregate_type=aggregate_type, aggregate_id=str(row_id),
                version=versions[str(row_id)], payload=payload, schema_version=1, occurred_at=now,
                origin=config.origin, correlation_id=correlation_id, next_attempt_at=now,
            )
        )
    return events


def backfill_run(
    *,
    aggregate_type: str,
    batch_size: int = 1000,
    resume: bool = False,
    direct: bool = False,
    progress: Callable[[int], None] | None = None,
) -> BackfillResult:
    import time

    started = time.perf_counter()
    config = sync_settings().aggregate(aggregate_type)
    manager = aggregate_model(config)._default_manager
    checkpoint, _ = BackfillCheckpoint.objects.get_or_create(aggregate_type=aggregate_type)
    if not resume or checkpoint.finished:
        checkpoint.last_id, checkpoint.emitted, checkpoint.finished = None, 0, False
        checkpoint.save()
    cursor = checkpoint.last_id
    emitted_total = 0
    producer = connection = confirms = None
    if direct:
        connection = broker_connection()  # lazy until the channel is opened
        is_amqp = connection.transport.driver_type == "amqp"
        if is_amqp:  # confirm each batch at once instead of each message (see BatchConfirms)
            options = {k: v for k, v in connection.transport_options.items() if k != "confirm_publish"}
            connection = broker_connection(transport_options=options)
        channel = connection.channel()
        topology_declare(channel=channel)
        confirms = BatchConfirms(channel) if is_amqp else None
        producer = Producer(channel, exchange=sync_exchange(), serializer="json", auto_declare=False)  # declared
    try:
        while True:
            scan = manager.order_by(config.id_field)
            if cursor is not None:
                scan = scan.filter(**{f"{config.id_field}__gt": cursor})
            ids = list(scan.values_list(config.id_field, flat=True)[:batch_size])
            if not ids:
                break
            with transaction.atomic():
                events = _snapshot_events(aggregate_type=aggregate_type, ids=ids)
                if direct:
                    with confirms.frames_buffered() if confirms is not None else contextlib.nullcontext():
                        for event in events:
                            producer.publish(
                                event_envelope(event),
                                routing_key=routing_key_for(aggregate_type=aggregate_type,
                                                            event_type=event.event_type),
                                message_id=str(event.message_id), headers={ATTEMPTS_HEADER: 0}, delivery_mode=2,
                                retry=False,
                            )
                            if confirms is not None:
                                confirms.published += 1
                    if confirms is not None and confirms.wait(timeout=60):  # checkpoint only confirmed batches
                        raise RuntimeError("the broker refused part of the batch; rerun with --resume")
                else:
                    outbox_insert_many(events=events)
                cursor = ids[-1]
                BackfillCheckpoint.objects.filter(pk=checkpoint.pk).update(
                    last_id=cursor, emitted=checkpoint.emitted + emitted_total + len(events)
                )
            emitted_total += len(events)
            if progress:
                progress(len(ids))
        BackfillCheckpoint.objects.filter(pk=checkpoint.pk).update(finished=True)
    finally:
        if connection is not None:
            connection.release()
    if not direct and emitted_total and sync_settings().relay_trigger == "celery":
        from strangler_sync.services import relay_trigger

        relay_trigger()
    return BackfillResult(
        aggregate=aggregate_type, emitted=emitted_total, last_id=cursor, seconds=time.perf_counter() - started
    )
