"""Capture triggers for PostgreSQL: one PL/pgSQL function per aggregate, AFTER row triggers calling it.

The function writes what ``event_publish`` writes (see ``strangler_sync.capture``): the version upsert is
``aggregate_version_next``'s, the payload ``jsonb_build_object`` of the declared fields rendered as
``canonical_value`` renders them. It reads two transaction-local settings: ``strangler.applying``
(silent while the consumer applies a synced event), ``strangler.correlation_id`` and ``strangler.traceparent``.
"""

from __future__ import annotations

from django.db import models

from strangler_sync.capture import (
    APPLYING_SETTING,
    CORRELATION_SETTING,
    TRACEPARENT_SETTING,
    CaptureTarget,
    CaptureUnsupported,
    sql_literal,
    sql_name,
)
from strangler_sync.models import AggregateVersion, AppliedVersion, OutboxEvent

# Column types whose PostgreSQL JSON rendering already equals canonical_value's (ints, text, bools, floats, JSON).
_AS_IS = frozenset({"CharField", "TextField", "SlugField", "EmailField", "URLField", "BooleanField", "IntegerField",
                    "BigIntegerField", "SmallIntegerField", "PositiveIntegerField", "PositiveBigIntegerField",
                    "PositiveSmallIntegerField", "AutoField", "BigAutoField", "SmallAutoField", "FloatField",
                    "JSONField"})


def _utc_iso(column: str) -> str:
    """``datetime.isoformat()`` of the value in UTC: microseconds only when non-zero, as Python prints it."""
    utc = f"({column} AT TIME ZONE 'UTC')"
    return (f"CASE WHEN {column} IS NULL THEN NULL ELSE to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || "
            f"CASE WHEN to_char({utc}, 'US') = '000000' THEN '' ELSE '.' || to_char({utc}, 'US') END || "
            f"'+00:00' END")


def _field_sql(field: models.Field, row: str) -> str:
    """The SQL expression of one column as ``canonical_value`` renders the Python value."""
    column = f"{row}.{sql_name(field.column)}"
    if isinstance(field, models.DateTimeField):
        return _utc_iso(column)
    if isinstance(field, models.DateField):
        return f"to_char({column}, 'YYYY-MM-DD')"
    if isinstance(field, models.DecimalField | models.UUIDField):
        return f"{column}::text"
    internal = field.target_field.get_internal_type() if field.is_relation else field.get_internal_type()
    if internal in _AS_IS:
        return column
    raise CaptureUnsupported(f"field {field.name!r} ({internal}) cannot be rendered by a capture trigger")


def trigger_sql(*, target: CaptureTarget) -> tuple[list[str], list[str]]:
    config = target.config
    key = target.key_column
    new_payload = ", ".join(f"{sql_literal(name)}, {_field_sql(field, 'NEW')}"
                            for name, field in target.payload_fields())
    old_key_json = f"OLD.{key}" if config.integer_keys else f"OLD.{key}::text"
    delete_branch = (
        f"row_key := OLD.{key}::text; event_type := {sql_literal(target.delete_event)}; "
        f"body := jsonb_build_object({sql_literal(config.key)}, {old_key_json});"
        if target.delete_event else "RETURN NULL;"
    )
    versions = sql_name(AggregateVersion._meta.db_table)
    applied = sql_name(AppliedVersion._meta.db_table)
    outbox = sql_name(OutboxEvent._meta.db_table)
    aggregate = sql_literal(config.name)
    function = sql_name(f"strangler_capture_{config.name}")
    write_trigger = sql_name(f"strangler_capture_{config.name}_write")
    update_trigger = sql_name(f"strangler_capture_{config.name}_update")
    install = [
        f"""CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $capture$
DECLARE
    row_key text;
    event_type text;
    body jsonb;
    next_version bigint;
    applied_version bigint;
    now_at timestamptz := clock_timestamp();
BEGIN
    IF current_setting('{APPLYING_SETTING}', true) = 'on' THEN
        RETURN NULL;  -- applying a synced event: followers never echo events
    END IF;
    IF TG_OP = 'DELETE' THEN
        {delete_branch}
    ELSE
        row_key := NEW.{key}::text;
        event_type := CASE TG_OP WHEN 'INSERT' THEN {sql_literal(target.insert_event)}
                                 ELSE {sql_literal(target.update_event)} END;
        body := jsonb_build_object({new_payload});
    END IF;
    SELECT COALESCE((SELECT version FROM {applied} WHERE aggregate_type = {aggregate} AND aggregate_id = row_key), 0)
        INTO applied_version;
    INSERT INTO {versions} AS v (aggregate_type, aggregate_id, version)
        VALUES ({aggregate}, row_key, applied_version + 1)
        ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET version = GREATEST(v.version, applied_version) + 1
        RETURNING v.version INTO next_version;
    INSERT INTO {outbox} (message_id, event_type, aggregate_type, aggregate_id, version, payload, schema_version,
                          occurred_at, origin, correlation_id, traceparent, status, attempts, next_attempt_at,
                          last_error)
        VALUES (gen_random_uuid(), event_type, {aggregate}, row_key, next_version, body, {target.schema_version},
                now_at, {sql_literal(target.origin)}, COALESCE(current_setting('{CORRELATION_SETTING}', true), ''),
                COALESCE(current_setting('{TRACEPARENT_SETTING}', true), ''),
                {sql_literal(OutboxEvent.Status.PENDING.value)}, 0, now_at, '');
    RETURN NULL;
END
$capture$""",
        f"DROP TRIGGER IF EXISTS {write_trigger} ON {target.table}",
        f"CREATE TRIGGER {write_trigger} AFTER INSERT OR DELETE ON {target.table} "
        f"FOR EACH ROW EXECUTE FUNCTION {function}()",
        f"DROP TRIGGER IF EXISTS {update_trigger} ON {target.table}",
        # an UPDATE that changes nothing (save() of an unchanged row) emits nothing
        f"CREATE TRIGGER {update_trigger} AFTER UPDATE ON {target.table} "
        f"FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION {function}()",
    ]
    remove = [
        f"DROP TRIGGER IF EXISTS {write_trigger} ON {target.table}",
        f"DROP TRIGGER IF EXISTS {update_trigger} ON {target.table}",
        f"DROP FUNCTION IF EXISTS {function}()",
    ]
    return install, remove
