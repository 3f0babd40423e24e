"""Backfill: stream every row of an aggregate as ``<aggregate>.snapshot`` events, resumable, safe with live writes.

Per batch (keyset by id): read the batch's ids, then their current versions (rows never evented get
version 1), *then* the rows. Reading the version before the state means a snapshot may carry newer
state than its version says, never older: if the live event of that newer version arrives later it
is still applied; if it arrived first the snapshot is stale and dropped. Either way the follower ends
on the newest state.

Modes: ``outbox`` (default) writes the snapshots into the outbox in the batch's transaction together
with the checkpoint, and the relay publishes them; ``direct`` publishes straight to the broker with
confirms (no outbox rows) and checkpoints after the broker confirmed the batch.

On PostgreSQL a batch whose payload is the canonical FIELDS is one statement (``INSERT .. SELECT`` into the
outbox; direct: a SELECT of the envelopes' parts and the payload's JSON text): the database builds each
payload (the same values ``canonical_value`` gives) and joins the versions, so version and state come from
one snapshot. Such a batch is checked against the event schema by the field types plus one query for the
per-row conditions (NULLs, JSON shapes); a batch that fails it, a SNAPSHOT function, or fields SQL cannot
render take the Python path (which validates each payload). Direct messages are the relay's
(``relay.outbox_claim``), and one batch is in flight: the broker confirms it while the next is built; the
checkpoint still moves only past confirmed batches.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models.expressions import RawSQL
from django.utils import timezone
from kombu import Producer

from servicekit.request_id import get_request_id
from strangler_sync.aggregates import Aggregate, Schema
from strangler_sync.broker import (
    ATTEMPTS_HEADER,
    BatchConfirms,
    amqp_reads_buffered,
    broker_connection,
    sync_exchange,
    topology_declare,
)
from strangler_sync.checksums import field_kind
from strangler_sync.conf import sync_settings
from strangler_sync.events import snapshot_event_type
from strangler_sync.models import AggregateVersion, BackfillCheckpoint, OutboxEvent
from strangler_sync.relay import ClaimedEvent, _claimed
from strangler_sync.schemas import payload_validate, schema_get
from strangler_sync.services import OutboxRow, aggregate_versions_ensure, outbox_insert_many
from strangler_sync.snapshots import aggregate_model, aggregate_payload, canonical_row


@dataclass
class BackfillResult:
    aggregate: str
    emitted: int
    last_id: int | str | None  # the last key emitted (text for UUID keys)
    seconds: float


def _payloads(*, aggregate_type: str, ids: list[int]) -> dict[int, dict]:
    config = sync_settings().aggregate(aggregate_type)
    manager = aggregate_model(config)._default_manager
    # the id range, not `__in` 2,000 ids (one placeholder each); rows created since the id scan are ignored
    rows = manager.filter(**{f"{config.id_field}__gte": ids[0], f"{config.id_field}__lte": ids[-1]})
    if config.snapshot:
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


def _message(event: OutboxRow) -> ClaimedEvent:
    """The message the relay would send for this outbox row (relay.outbox_claim): one format on the wire."""
    return _claimed((None, event.message_id, event.event_type, event.aggregate_type, event.aggregate_id,
                     event.version, event.schema_version, event.occurred_at, event.origin, event.correlation_id,
                     event.traceparent, None), json.dumps(event.payload))  # snapshots carry no epoch


def _confirms_wait(confirms: BatchConfirms, *, upto: int, timeout: float) -> set[int]:
    """Block until the broker answered every delivery up to tag `upto`; returns (and forgets) those it nacked.
    Unlike BatchConfirms.wait, later deliveries may still be unanswered (the next batch, in flight)."""
    deadline = time.monotonic() + timeout
    while confirms.acked_upto < upto:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"broker confirmed {confirms.acked_upto} of {upto} messages in {timeout}s")
        confirms.channel.connection.drain_events(timeout=remaining)
    refused = {tag for tag in confirms.nacked if tag <= upto}
    confirms.nacked -= refused
    return refused


# --- into the outbox in one statement (PostgreSQL) ------------------------------------------------------------

# JSON types a payload value of each field kind can have (checksums.field_kind), as schema type tuples
_KIND_TYPES = {"i": int, "s": str, "n": str, "t": str, "d": str, "b": bool}
# what jsonb_typeof() says for the Python types a schema can ask of a JSON field
_JSONB_TYPES = {list: "array", dict: "object", str: "string", bool: "boolean", type(None): "null"}


def _sql_payload_value(*, kind: str, field: models.Field, column: str) -> str | None:
    """SQL for one field's payload value, equal to canonical_value() of what Django reads; None: not possible."""
    if kind in ("i", "b", "j"):
        return column
    if kind == "s":
        return f"{column}::text"
    if kind == "n":  # str(Decimal) is plain notation down to 1E-6: numeric::text from a fixed scale <= 6
        return f"{column}::text" if field.decimal_places <= 6 else None
    if kind == "t":  # isoformat() in UTC, microseconds only when not zero
        if not settings.USE_TZ:
            return None
        utc = f"({column} AT TIME ZONE 'UTC')"
        return (f"to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN to_char({utc}, 'US') = '000000' "
                f"THEN '' ELSE to_char({utc}, '.US') END || '+00:00'")
    if kind == "d":
        return f"to_char({column}, 'YYYY-MM-DD')"
    return None


def _schema_conditions(*, schema: Schema, layout: dict[str, tuple[str, models.Field, str]]) -> list[str] | None:
    """SQL conditions every row must meet for its SQL-built payload to pass payload_validate; None: it never can
    be decided in SQL (then the Python path validates, and raises where the old path raised)."""
    conditions = []
    for name, types in [*schema.required.items(), *schema.optional.items()]:
        if name not in layout:
            if name in schema.required:
                return None
            continue
        kind, field, column = layout[name]
        if kind == "j":
            if any(t not in _JSONB_TYPES for t in types):
                return None
            allowed = ", ".join(f"'{_JSONB_TYPES[t]}'" for t in types)
            # SQL NULL and JSON null both become a JSON null in the payload
            conditions.append(f"COALESCE(jsonb_typeof({column}), 'null') IN ({allowed})")
            continue
        if _KIND_TYPES[kind] not in types:
            return None
        if field.null and type(None) not in types:
            conditions.append(f"{column} IS NOT NULL")
    return conditions


@dataclass(frozen=True)
class _SqlPlan:
    payload: str  # jsonb_build_object(...) over the model's table
    conditions: list[str]


def _sql_plan(*, config: Aggregate, event_type: str) -> _SqlPlan | None:
    if connection.vendor != "postgresql" or config.snapshot or len(config.fields) > 50:  # 100 arguments
        return None
    if not config.integer_keys:  # the batch's keys travel as one comma-joined string: integers only
        return None
    schema = schema_get(event_type=event_type, schema_version=1)
    if schema is None:
        return None
    model = aggregate_model(config)
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    layout, pairs = {}, []
    for name, attr in config.fields.items():
        field = model._meta.get_field(attr)
        kind = field_kind(model=model, attr=attr)
        target = field
        while target.is_relation:
            target = target.target_field
        column = f"{table}.{quote(field.column)}"
        value = _sql_payload_value(kind=kind, field=target, column=column)
        if value is None:
            return None
        layout[name] = (kind, field, column)
        pairs.append(f"'{name}', {value}")
    conditions = _schema_conditions(schema=schema, layout=layout)
    if conditions is None:
        return None
    return _SqlPlan(payload=f"jsonb_build_object({', '.join(pairs)})", conditions=conditions)


def _sql_batch(
    *, config: Aggregate, plan: _SqlPlan, event_type: str, ids: list[int], publish: bool
) -> int | list[ClaimedEvent] | None:
    """The batch's snapshots in one statement: inserted into the outbox (returns the count) or, to publish,
    read as envelopes with the payload's JSON text spliced in, as the relay sends outbox rows (returns them).
    None when a row fails the schema (the Python path then raises as it always did).

    The rows are the batch's id range (a row created in it since the id scan, with its version, is
    included: one more snapshot the version guard handles). Versions are looked up per row by index (LATERAL,
    OFFSET 0 keeps the planner from flattening it): with a fresh versions table's statistics it hashed the
    whole table for every batch.
    """
    model = aggregate_model(config)
    id_field = config.id_field
    rows = model._default_manager.filter(**{f"{id_field}__gte": ids[0], f"{id_field}__lte": ids[-1]}).order_by()
    outbox = connection.ops.quote_name(OutboxEvent._meta.db_table)
    versions = connection.ops.quote_name(AggregateVersion._meta.db_table)
    with connection.cursor() as cursor:
        if plan.conditions:
            failing = RawSQL(f"NOT ({' AND '.join(plan.conditions)})", [], output_field=models.BooleanField())
            sql, params = rows.filter(failing).values_list(id_field)[:1].query.sql_with_params()
            cursor.execute(sql, params)
            if cursor.fetchone() is not None:
                return None
        # version 1 for rows never evented; the ids as one string (binding 2,000 strings costs more than this)
        cursor.execute(
            f"INSERT INTO {versions} (aggregate_type, aggregate_id, version) SELECT %s, unnest(string_to_array(%s, "
            "',')), 1 ON CONFLICT (aggregate_type, aggregate_id) DO NOTHING",
            [config.name, ",".join(map(str, ids))],
        )
        sql, params = rows.annotate(_strangler_payload=RawSQL(plan.payload, [])).values_list(
            id_field, "_strangler_payload").query.sql_with_params()
        now = timezone.now()
        source = (f"FROM ({sql}) AS r (id, payload) CROSS JOIN LATERAL (SELECT version FROM {versions} "
                  "WHERE aggregate_type = %s AND aggregate_id = r.id::text OFFSET 0) AS v ORDER BY r.id")
        correlation_id = get_request_id() or ""
        if publish:  # the columns relay._claimed takes, then the payload's text
            cursor.execute(
                "SELECT NULL, gen_random_uuid(), %s, %s, r.id::text, v.version, 1, %s, %s, %s, '', NULL, "
                "r.payload::text "
                + source,
                [event_type, config.name, now, sync_settings().origin, correlation_id, *params, config.name],
            )
            return [_claimed(row[:-1], row[-1]) for row in cursor.fetchall()]
        cursor.execute(
            f"INSERT INTO {outbox} (message_id, event_type, aggregate_type, aggregate_id, version, payload, "
            "schema_version, occurred_at, origin, correlation_id, status, attempts, next_attempt_at, last_error) "
            "SELECT gen_random_uuid(), %s, %s, r.id::text, v.version, r.payload, 1, %s, %s, %s, %s, 0, %s, '' "
            + source,
            [event_type, config.name, now, sync_settings().origin, correlation_id, OutboxEvent.Status.PENDING, now,
             *params, config.name],
        )
        return cursor.rowcount


def backfill_run(
    *,
    aggregate_type: str,
    batch_size: int = 1000,
    resume: bool = False,
    direct: bool = False,
    progress: Callable[[int], None] | None = None,
    engine: str = "auto",
) -> BackfillResult:
    """Emit every row as a snapshot; engine "auto" (one statement per batch where possible) or "python"."""
    started = time.perf_counter()
    config = sync_settings().aggregate(aggregate_type)
    manager = aggregate_model(config)._default_manager
    checkpoint, _ = BackfillCheckpoint.objects.get_or_create(aggregate_type=aggregate_type)
    if not resume or checkpoint.finished:
        checkpoint.last_id, checkpoint.emitted, checkpoint.finished = None, 0, False
        checkpoint.save()
    cursor = checkpoint.last_id
    emitted_total = 0
    event_type = snapshot_event_type(aggregate_type)
    if engine not in ("auto", "python"):
        raise ValueError(f"unknown backfill engine {engine!r}")
    plan = _sql_plan(config=config, event_type=event_type) if engine == "auto" else None
    producer = broker = confirms = None
    if direct:
        broker = broker_connection()  # lazy until the channel is opened
        is_amqp = broker.transport.driver_type == "amqp"
        if is_amqp:  # confirm each batch at once instead of each message (see BatchConfirms)
            options = {k: v for k, v in broker.transport_options.items() if k != "confirm_publish"}
            broker = broker_connection(transport_options=options)
        channel = broker.channel()
        topology_declare(channel=channel)
        confirms = BatchConfirms(channel) if is_amqp else None
        if is_amqp:
            amqp_reads_buffered(broker.connection)  # the broker's acks: one recv for many
        producer = Producer(channel, exchange=sync_exchange(), serializer="json", auto_declare=False)  # declared
    in_flight: tuple[int, int, int] | None = None  # (last delivery tag, last id, rows) published, not confirmed

    def checkpoint_move(*, last_id, rows: int) -> None:
        nonlocal emitted_total
        emitted_total += rows
        # the checkpoint column is an integer: a UUID/str-keyed backfill resumes from its start (snapshots
        # are idempotent under the version guard, so re-sending them costs time, not correctness)
        BackfillCheckpoint.objects.filter(pk=checkpoint.pk).update(
            last_id=last_id if config.integer_keys else None, emitted=checkpoint.emitted + emitted_total
        )

    def in_flight_confirm() -> None:
        # checkpoint only confirmed batches: a crash before this re-publishes the batch on --resume
        tag, last_id, rows = in_flight
        if _confirms_wait(confirms, upto=tag, timeout=60):
            raise RuntimeError("the broker refused part of the batch; rerun with --resume")
        checkpoint_move(last_id=last_id, rows=rows)

    try:
        while True:
            scan = manager.order_by(config.id_field)
            if cursor is not None:
                scan = scan.filter(**{f"{config.id_field}__gt": cursor})
            ids = list(scan.values_list(config.id_field, flat=True)[:batch_size])
            if not ids:
                break
            with transaction.atomic():
                built = None
                if plan is not None:
                    built = _sql_batch(config=config, plan=plan, event_type=event_type, ids=ids, publish=direct)
                if built is None:
                    events = _snapshot_events(aggregate_type=aggregate_type, ids=ids)
                    if direct:  # the relay's message for an outbox row (see relay.outbox_claim)
                        built = [_message(event) for event in events]
                    else:
                        outbox_insert_many(events=events)
                        built = len(events)
                emitted = len(built) if direct else built
                if direct:
                    with confirms.frames_buffered() if confirms is not None else contextlib.nullcontext():
                        for message in built:
                            producer.publish(
                                message.body, routing_key=message.routing_key, content_type="application/json",
                                content_encoding="utf-8", message_id=message.message_id,
                                correlation_id=message.correlation_id or None, headers={ATTEMPTS_HEADER: 0},
                                delivery_mode=2, retry=False,
                            )
                            if confirms is not None:
                                confirms.published += 1
                if confirms is None:  # outbox rows commit with the checkpoint; filesystem writes are done
                    checkpoint_move(last_id=ids[-1], rows=emitted)
            cursor = ids[-1]
            if confirms is not None:
                # the broker confirms this batch while the next one is read and built (one batch in flight):
                # its Python work and the broker's overlap instead of taking turns
                if in_flight is not None:
                    in_flight_confirm()
                in_flight = (confirms.published, cursor, emitted)
            if progress:
                progress(len(ids))
        if in_flight is not None:
            in_flight_confirm()
        BackfillCheckpoint.objects.filter(pk=checkpoint.pk).update(finished=True)
    finally:
        if broker is not None:
            broker.release()
    if not direct and emitted_total and sync_settings().relay_trigger == "celery":
        from strangler_sync.services import relay_trigger

        relay_trigger()
    return BackfillResult(
        aggregate=aggregate_type, emitted=emitted_total, last_id=cursor, seconds=time.perf_counter() - started
    )
