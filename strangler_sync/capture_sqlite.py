"""Capture triggers for SQLite (3.38+ has the JSON functions built in): AFTER INSERT/UPDATE/DELETE per aggregate.

Each trigger upserts the aggregate's version exactly as ``aggregate_version_next`` does and inserts the
outbox row with the payload built by ``json_object`` from the declared fields, rendered as Django stores
them on SQLite and ``canonical_value`` prints them (decimals with their declared places, datetimes stored
as naive UTC text, booleans as 0/1, JSON as text, UUIDs as 32 hex digits).

SQLite has no session variables, so the settings the PostgreSQL trigger reads live in a small table,
``strangler_capture_context`` (name, value): the consumer inserts ``applying`` and ``capture_context``
inserts ``correlation_id`` and ``traceparent`` inside the write's transaction and deletes them before
leaving. SQLite allows one writer at a time, so no other connection's trigger can see a row that is never
committed.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from strangler_sync.capture import CaptureTarget, CaptureUnsupported, sql_literal, sql_name
from strangler_sync.models import AggregateVersion, AppliedVersion, OutboxEvent

CONTEXT_TABLE = "strangler_capture_context"
_AS_IS = frozenset({"CharField", "TextField", "SlugField", "EmailField", "URLField", "IntegerField", "DateField",
                    "BigIntegerField", "SmallIntegerField", "PositiveIntegerField", "PositiveBigIntegerField",
                    "PositiveSmallIntegerField", "AutoField", "BigAutoField", "SmallAutoField", "FloatField"})


def _field_sql(field: models.Field, row: str) -> str:
    """The SQL expression of one stored column as ``canonical_value`` renders the Python value."""
    column = f"{row}.{sql_name(field.column)}"
    if field.is_relation:
        field = field.target_field
    internal = field.get_internal_type()
    if isinstance(field, models.DateTimeField):
        offset = " || '+00:00'" if settings.USE_TZ else ""  # stored naive (UTC when USE_TZ), isoformat() with 'T'
        return f"replace({column}, ' ', 'T'){offset}"
    if isinstance(field, models.DecimalField):
        return f"CASE WHEN {column} IS NULL THEN NULL ELSE printf('%.{field.decimal_places}f', {column}) END"
    if isinstance(field, models.UUIDField):
        return (f"CASE WHEN {column} IS NULL THEN NULL ELSE lower(substr({column}, 1, 8) || '-' || "
                f"substr({column}, 9, 4) || '-' || substr({column}, 13, 4) || '-' || substr({column}, 17, 4) || '-' "
                f"|| substr({column}, 21)) END")
    if internal == "BooleanField":
        return f"CASE {column} WHEN 1 THEN json('true') WHEN 0 THEN json('false') END"
    if internal == "JSONField":
        return f"json({column})"
    if internal in _AS_IS:
        return column
    raise CaptureUnsupported(f"field {field.name!r} ({internal}) cannot be rendered by a capture trigger")


def _outbox_insert(*, target: CaptureTarget, event_type: str, row: str, payload: str) -> str:
    versions = sql_name(AggregateVersion._meta.db_table)
    applied = sql_name(AppliedVersion._meta.db_table)
    outbox = sql_name(OutboxEvent._meta.db_table)
    aggregate = sql_literal(target.config.name)
    key = f"CAST({row}.{target.key_column} AS TEXT)"
    applied_version = (f"COALESCE((SELECT version FROM {applied} WHERE aggregate_type = {aggregate} "
                       f"AND aggregate_id = {key}), 0)")
    now = "strftime('%Y-%m-%d %H:%M:%f', 'now')"
    return f"""
    INSERT INTO {versions} (aggregate_type, aggregate_id, version) VALUES ({aggregate}, {key}, {applied_version} + 1)
        ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET version = MAX(version, {applied_version}) + 1;
    INSERT INTO {outbox} (message_id, event_type, aggregate_type, aggregate_id, version, payload, schema_version,
                          occurred_at, origin, correlation_id, traceparent, status, attempts, next_attempt_at,
                          last_error)
        SELECT lower(hex(randomblob(16))), {sql_literal(event_type)}, {aggregate}, {key}, v.version, {payload},
               {target.schema_version}, {now}, {sql_literal(target.origin)},
               COALESCE((SELECT value FROM {CONTEXT_TABLE} WHERE name = 'correlation_id'), ''),
               COALESCE((SELECT value FROM {CONTEXT_TABLE} WHERE name = 'traceparent'), ''),
               {sql_literal(OutboxEvent.Status.PENDING.value)}, 0, {now}, ''
        FROM {versions} AS v WHERE v.aggregate_type = {aggregate} AND v.aggregate_id = {key};"""


def trigger_sql(*, target: CaptureTarget) -> tuple[list[str], list[str]]:
    config = target.config
    name = f"strangler_capture_{config.name}"
    silent = f"NOT EXISTS (SELECT 1 FROM {CONTEXT_TABLE} WHERE name = 'applying')"
    new_payload = "json_object(" + ", ".join(
        f"{sql_literal(field_name)}, {_field_sql(field, 'NEW')}" for field_name, field in target.payload_fields()
    ) + ")"
    old_key = f"OLD.{target.key_column}" if config.integer_keys else f"CAST(OLD.{target.key_column} AS TEXT)"
    changed = " OR ".join(f"OLD.{column} IS NOT NEW.{column}" for column in target.columns())
    triggers = {
        "insert": f"AFTER INSERT ON {target.table} WHEN {silent} BEGIN"
                  + _outbox_insert(target=target, event_type=target.insert_event, row="NEW", payload=new_payload),
        # an UPDATE that changes nothing (save() of an unchanged row) emits nothing
        "update": f"AFTER UPDATE ON {target.table} WHEN {silent} AND ({changed}) BEGIN"
                  + _outbox_insert(target=target, event_type=target.update_event, row="NEW", payload=new_payload),
    }
    if target.delete_event:
        triggers["delete"] = f"AFTER DELETE ON {target.table} WHEN {silent} BEGIN" + _outbox_insert(
            target=target, event_type=target.delete_event, row="OLD",
            payload=f"json_object({sql_literal(config.key)}, {old_key})")
    install = [f"CREATE TABLE IF NOT EXISTS {CONTEXT_TABLE} (name TEXT PRIMARY KEY, value TEXT NOT NULL)"]
    remove = []
    for operation in ("insert", "update", "delete"):
        trigger = sql_name(f"{name}_{operation}")
        install.append(f"DROP TRIGGER IF EXISTS {trigger}")
        remove.append(f"DROP TRIGGER IF EXISTS {trigger}")
        if operation in triggers:
            install.append(f"CREATE TRIGGER {trigger} {triggers[operation]}\nEND")
    return install, remove
