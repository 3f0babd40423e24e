"""Automatic change capture on PostgreSQL: triggers that write the outbox row of every change to an aggregate.

An aggregate declared with ``capture="automatic"`` gets, on its model's table, AFTER INSERT/UPDATE/DELETE
``FOR EACH ROW`` triggers whose function writes the same outbox row ``event_publish`` writes: same
envelope columns, the per-aggregate version from the same version table with the same upsert (above the
newest version this project applied), and the payload built in SQL from the declared ``fields`` exactly
as ``strangler_sync.snapshots.canonical_value`` renders them (decimals as their text, datetimes as UTC
ISO 8601, JSON as JSON). The row is written in the transaction of the change, whatever made it: ``save``,
``bulk_create``, ``QuerySet.update``/``delete``, raw SQL, a data migration, the admin or a psql session.

The triggers are installed by a migration of the project's own app, written (and kept in step with the
declarations) by ``manage.py sync_capture_migration <app_label>``; the SQL is ``CREATE OR REPLACE``, so
re-running it is harmless.

Transaction-local settings the trigger reads:

* ``strangler.applying = 'on'``: set by the consumer while it applies a synced event
  (``applying_synced_event``), so a follower with capture on never echoes an event back;
* ``strangler.correlation_id``: set by :func:`capture_context` / :class:`CaptureContextMiddleware`, so a
  change made inside a request carries its X-Request-ID like an explicitly published event.

What it cannot see or do (documented, not silently wrong): ``TRUNCATE`` (no row triggers), writes while
the triggers are disabled (``session_replication_role = replica``), ownership (the ownership file is not
visible to the database: refuse non-owner writes in the services, ``ownership_require_owner``), a declared
``snapshot`` callable (Python cannot run in the trigger: such aggregates stay explicit), and the Celery
relay trigger (a captured row is published by the relay's periodic sweep or ``sync_relay``).
"""

from __future__ import annotations

import contextlib

from django.db import connection, models

from servicekit.request_id import get_request_id
from strangler_sync.aggregates import DELETED, Aggregate
from strangler_sync.models import AggregateVersion, AppliedVersion, OutboxEvent

AUTOMATIC = "automatic"
APPLYING_SETTING = "strangler.applying"
CORRELATION_SETTING = "strangler.correlation_id"


class CaptureUnsupported(ValueError):
    """The aggregate cannot be captured by a trigger (a snapshot callable, a field type SQL cannot render)."""


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _utc_iso(column: str) -> str:
    """``datetime.isoformat()`` of the value in UTC: microseconds only when non-zero, as Python prints it."""
    utc = f"({column} AT TIME ZONE 'UTC')"
    return (f"CASE WHEN {column} IS NULL THEN NULL ELSE to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || "
            f"CASE WHEN to_char({utc}, 'US') = '000000' THEN '' ELSE '.' || to_char({utc}, 'US') END || "
            f"'+00:00' END")


def _field_sql(field: models.Field, row: str) -> str:
    """The SQL expression of one column as ``canonical_value`` renders the Python value."""
    column = f"{row}.{_quote(field.column)}"
    if isinstance(field, models.DateTimeField):
        return _utc_iso(column)
    if isinstance(field, models.DateField):
        return f"to_char({column}, 'YYYY-MM-DD')"
    if isinstance(field, models.DecimalField | models.UUIDField):
        return f"{column}::text"
    internal = field.get_internal_type()
    if isinstance(field, models.ForeignKey):
        internal = field.target_field.get_internal_type()
    if internal in {"CharField", "TextField", "SlugField", "EmailField", "URLField", "BooleanField", "IntegerField",
                    "BigIntegerField", "SmallIntegerField", "PositiveIntegerField", "PositiveBigIntegerField",
                    "PositiveSmallIntegerField", "AutoField", "BigAutoField", "SmallAutoField", "FloatField",
                    "JSONField"}:
        return column
    raise CaptureUnsupported(f"field {field.name!r} ({internal}) cannot be rendered by a capture trigger")


def capture_names(config: Aggregate) -> tuple[str, str]:
    """(the trigger function's name, the triggers' name prefix) of an aggregate."""
    return f"strangler_capture_{config.name}", f"strangler_capture_{config.name}"


def capture_sql(*, config: Aggregate, origin: str) -> tuple[list[str], list[str]]:
    """(statements installing the capture triggers of an aggregate, statements removing them), PostgreSQL."""
    from django.apps import apps

    if config.snapshot is not None:
        raise CaptureUnsupported(f"aggregate {config.name!r} declares a snapshot callable, which a trigger cannot "
                                 f"run: keep capture='explicit' or declare its payload as fields")
    if config.model is None:
        raise CaptureUnsupported(f"aggregate {config.name!r} has no model in this project")
    model = apps.get_model(config.model)
    meta = model._meta
    table = _quote(meta.db_table)
    schema_version = max(config.schemas)
    new_payload = ", ".join(f"{_literal(name)}, {_field_sql(meta.get_field(attr), 'NEW')}"
                            for name, attr in config.fields.items())
    key_column = _quote(meta.get_field(config.id_field).column)
    old_key_json = f"OLD.{key_column}" if config.integer_keys else f"OLD.{key_column}::text"
    insert_action = "created" if "created" in config.actions else next(a for a in config.actions if a != DELETED)
    update_action = "updated" if "updated" in config.actions else insert_action
    delete_branch = (
        f"row_key := OLD.{key_column}::text; event_type := {_literal(config.event(DELETED))}; "
        f"body := jsonb_build_object({_literal(config.key)}, {old_key_json});"
        if DELETED in config.actions else "RETURN NULL;"
    )
    versions = _quote(AggregateVersion._meta.db_table)
    applied = _quote(AppliedVersion._meta.db_table)
    outbox = _quote(OutboxEvent._meta.db_table)
    aggregate = _literal(config.name)
    function, trigger = capture_names(config)
    install = [
        f"""CREATE OR REPLACE FUNCTION {_quote(function)}() RETURNS trigger LANGUAGE plpgsql AS $capture$
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
        row_key := NEW.{key_column}::text;
        event_type := CASE TG_OP WHEN 'INSERT' THEN {_literal(config.event(insert_action))}
                                 ELSE {_literal(config.event(update_action))} END;
        body := jsonb_build_object({new_payload});
    END IF;
    SELECT COALESCE((SELECT version FROM {applied} WHERE aggregate_type = {aggregate} AND aggregate_id = row_key), 0)
        INTO applied_version;
    INSERT INTO {versions} AS v (aggregate_type, aggregate_id, version)
        VALUES ({aggregate}, row_key, applied_version + 1)
        ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET version = GREATEST(v.version, applied_version) + 1
        RETURNING v.version INTO next_version;
    INSERT INTO {outbox} (message_id, event_type, aggregate_type, aggregate_id, version, payload, schema_version,
                          occurred_at, origin, correlation_id, status, attempts, next_attempt_at, last_error)
        VALUES (gen_random_uuid(), event_type, {aggregate}, row_key, next_version, body, {schema_version},
                now_at, {_literal(origin)}, COALESCE(current_setting('{CORRELATION_SETTING}', true), ''),
                {_literal(OutboxEvent.Status.PENDING.value)}, 0, now_at, '');
    RETURN NULL;
END
$capture$""",
        f"DROP TRIGGER IF EXISTS {_quote(trigger + '_write')} ON {table}",
        f"CREATE TRIGGER {_quote(trigger + '_write')} AFTER INSERT OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION {_quote(function)}()",
        f"DROP TRIGGER IF EXISTS {_quote(trigger + '_update')} ON {table}",
        # an UPDATE that changes nothing (save() of an unchanged row) emits nothing
        f"CREATE TRIGGER {_quote(trigger + '_update')} AFTER UPDATE ON {table} "
        f"FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION {_quote(function)}()",
    ]
    remove = [
        f"DROP TRIGGER IF EXISTS {_quote(trigger + '_write')} ON {table}",
        f"DROP TRIGGER IF EXISTS {_quote(trigger + '_update')} ON {table}",
        f"DROP FUNCTION IF EXISTS {_quote(function)}()",
    ]
    return install, remove


def capture_aggregates(*, app_label: str | None = None) -> list[Aggregate]:
    """This project's aggregates with automatic capture (of one app's models, when given)."""
    from strangler_sync.conf import sync_settings

    found = [a for a in sync_settings().aggregates.values() if a.capture == AUTOMATIC and a.model]
    return [a for a in found if app_label is None or a.model.split(".")[0] == app_label]


def _set(name: str, value: str, *, local: bool) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config(%s, %s, %s)", [name, value, local])


@contextlib.contextmanager
def capture_context(*, correlation_id: str | None = None):
    """Inside a transaction: changes captured by triggers carry ``correlation_id`` (default: the request's)."""
    value = correlation_id if correlation_id is not None else (get_request_id() or "")
    if connection.vendor != "postgresql" or not connection.in_atomic_block:
        yield
        return
    _set(CORRELATION_SETTING, value, local=True)
    try:
        yield
    finally:
        _set(CORRELATION_SETTING, "", local=True)


def capture_applying(*, on: bool) -> None:
    """Mark the current transaction as applying a synced event (capture triggers stay silent), or not."""
    if connection.vendor == "postgresql" and connection.in_atomic_block and capture_aggregates():
        _set(APPLYING_SETTING, "on" if on else "off", local=True)


class CaptureContextMiddleware:
    """Captured changes made while handling a request carry its X-Request-ID (after RequestIdMiddleware).

    The setting is made on the request's first query (a request that never touches the database costs
    nothing) at session level, because the request's transactions have not begun yet, and cleared after.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = get_request_id()
        if not request_id or connection.vendor != "postgresql":
            return self.get_response(request)
        state = {"set": False}

        def first_query_sets_correlation(execute, sql, params, many, context):
            if not state["set"]:
                state["set"] = True
                context["cursor"].execute("SELECT set_config(%s, %s, false)", [CORRELATION_SETTING, request_id])
            return execute(sql, params, many, context)

        with connection.execute_wrapper(first_query_sets_correlation):
            try:
                return self.get_response(request)
            finally:
                if state["set"] and connection.connection is not None:
                    with contextlib.suppress(Exception):  # a broken connection is closed, the setting with it
                        _set(CORRELATION_SETTING, "", local=False)
