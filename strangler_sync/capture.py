"""Automatic change capture: database triggers that write the outbox row of every change to an aggregate.

An aggregate declared with ``capture="automatic"`` gets, on its model's table, AFTER INSERT/UPDATE/DELETE
``FOR EACH ROW`` triggers that write the same outbox row ``event_publish`` writes: same envelope columns,
the per-aggregate version from the same version table with the same upsert (above the newest version this
project applied), and the payload built in SQL from the declared ``fields`` exactly as
``strangler_sync.snapshots.canonical_value`` renders them (decimals as their text, datetimes as UTC ISO
8601, JSON as JSON). The row is written in the transaction of the change, whatever made it: ``save``,
``bulk_create``, ``bulk_update``, ``QuerySet.update``/``delete``, raw SQL, a data migration, the admin, a
psql or sqlite3 session. PostgreSQL (``capture_postgresql``) and SQLite 3.38+ (``capture_sqlite``) only.

The triggers are installed by a migration of the project's own app, written (and kept in step with the
declarations) by ``manage.py sync_capture_migration <app_label>`` (``capture_migration``).

Settings the trigger reads, local to the write's transaction:

* *applying*: set by the consumer while it applies a synced event (``applying_synced_event``), so a
  follower with capture on never echoes an event back;
* *correlation id* and *traceparent*: set by :func:`capture_context` (and on PostgreSQL by
  :class:`CaptureContextMiddleware` for a whole request), so a captured change carries its X-Request-ID and
  W3C trace context like an explicitly published event.

What it cannot see or do (documented, not silently wrong): ``TRUNCATE`` (no row triggers), writes while
triggers are disabled (PostgreSQL ``session_replication_role = replica``), ownership (the ownership file is
not visible to the database: refuse non-owner writes in the services with ``ownership_require_owner``), a
declared ``snapshot`` callable (Python cannot run in a trigger: such aggregates stay explicit), the Celery
relay trigger (a captured row is published by the relay's periodic sweep or ``sync_relay``), and on SQLite
the request-wide correlation id and trace context (use ``capture_context`` inside the transaction).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from django.db import DatabaseError, connection, models

from servicekit.request_id import get_request_id
from servicekit.trace_context import get_traceparent
from strangler_sync.aggregates import DELETED, Aggregate

AUTOMATIC = "automatic"
APPLYING_SETTING = "strangler.applying"
CORRELATION_SETTING = "strangler.correlation_id"
TRACEPARENT_SETTING = "strangler.traceparent"


class CaptureUnsupported(ValueError):
    """The aggregate cannot be captured by a trigger (a snapshot callable, a field type SQL cannot render)."""


def sql_name(name: str) -> str:
    """A quoted SQL identifier (PostgreSQL and SQLite quote alike)."""
    return '"' + name.replace('"', '""') + '"'


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class CaptureTarget:
    """What a trigger generator needs of one aggregate, resolved against this project's models."""

    config: Aggregate
    model: type[models.Model]
    origin: str
    schema_version: int
    insert_event: str
    update_event: str
    delete_event: str | None  # None: the aggregate declares no deleted action, a DELETE emits nothing

    @property
    def table(self) -> str:
        return sql_name(self.model._meta.db_table)

    @property
    def key_column(self) -> str:
        return sql_name(self.model._meta.get_field(self.config.id_field).column)

    def payload_fields(self) -> list[tuple[str, models.Field]]:
        """(canonical name, model field) of every payload field."""
        return [(name, self.model._meta.get_field(attr)) for name, attr in self.config.fields.items()]

    def columns(self) -> list[str]:
        return [sql_name(f.column) for f in self.model._meta.concrete_fields]


def capture_target(*, config: Aggregate, origin: str) -> CaptureTarget:
    from django.apps import apps

    if config.snapshot is not None:
        raise CaptureUnsupported(f"aggregate {config.name!r} declares a snapshot callable, which a trigger cannot "
                                 f"run: keep capture='explicit' or declare its payload as fields")
    if config.model is None:
        raise CaptureUnsupported(f"aggregate {config.name!r} has no model in this project")
    insert_action = "created" if "created" in config.actions else next(a for a in config.actions if a != DELETED)
    update_action = "updated" if "updated" in config.actions else insert_action
    return CaptureTarget(
        config=config, model=apps.get_model(config.model), origin=origin, schema_version=max(config.schemas),
        insert_event=config.event(insert_action), update_event=config.event(update_action),
        delete_event=config.event(DELETED) if DELETED in config.actions else None,
    )


def capture_sql(*, config: Aggregate, origin: str, vendor: str) -> tuple[list[str], list[str]]:
    """(statements installing an aggregate's capture triggers, statements removing them) for a database."""
    from strangler_sync import capture_postgresql, capture_sqlite

    generators = {"postgresql": capture_postgresql.trigger_sql, "sqlite": capture_sqlite.trigger_sql}
    if vendor not in generators:
        raise CaptureUnsupported(f"automatic capture supports PostgreSQL and SQLite, not {vendor}")
    return generators[vendor](target=capture_target(config=config, origin=origin))


def capture_aggregates(*, app_label: str | None = None) -> list[Aggregate]:
    """This project's aggregates with automatic capture (of one app's models, when given)."""
    from strangler_sync.conf import sync_settings

    found = [a for a in sync_settings().aggregates.values() if a.capture == AUTOMATIC and a.model]
    return [a for a in found if app_label is None or a.model.split(".")[0] == app_label]


def _set(name: str, value: str, *, local: bool) -> None:
    """Set a capture setting (empty: unset); on SQLite a row of the context table (see ``capture_sqlite``)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT set_config(%s, %s, %s)", [name, value, local])
            return
        from strangler_sync.capture_sqlite import CONTEXT_TABLE

        row = name.rpartition(".")[2]
        cursor.execute(f"DELETE FROM {CONTEXT_TABLE} WHERE name = %s", [row])
        if value:
            cursor.execute(f"INSERT INTO {CONTEXT_TABLE} (name, value) VALUES (%s, %s)", [row, value])


def _capturing() -> bool:
    return connection.vendor in {"postgresql", "sqlite"} and connection.in_atomic_block and bool(capture_aggregates())


@contextlib.contextmanager
def capture_context(*, correlation_id: str | None = None, traceparent: str | None = None):
    """Inside a transaction: changes captured by triggers carry ``correlation_id`` and ``traceparent``
    (default: the request's X-Request-ID and the current trace context)."""
    values = {
        CORRELATION_SETTING: correlation_id if correlation_id is not None else (get_request_id() or ""),
        TRACEPARENT_SETTING: traceparent if traceparent is not None else (get_traceparent() or ""),
    }
    values = {name: value for name, value in values.items() if value}
    with captured_positions_noted():
        if not values or not _capturing():
            yield
            return
        with contextlib.ExitStack() as stack:
            for name, value in values.items():
                _set(name, value, local=True)
                stack.enter_context(capture_setting_cleared(name))
            yield


@contextlib.contextmanager
def captured_positions_noted():
    """Under read-your-writes collection (strangler_sync.read_your_writes): note the versions the block's triggers
    wrote, read back from the outbox (rows past the highest id before the block; a concurrent writer's rows among
    them only make the client wait for more). Costs nothing when nothing collects."""
    from strangler_sync.models import OutboxEvent  # the app registry is ready by the time a write runs
    from strangler_sync.read_your_writes import written_collecting, written_position_note

    if not written_collecting():
        yield
        return
    start = OutboxEvent.objects.aggregate(top=models.Max("id"))["top"] or 0
    yield
    for aggregate_type, aggregate_id, version in OutboxEvent.objects.filter(id__gt=start).values_list(
            "aggregate_type", "aggregate_id", "version"):
        written_position_note(aggregate_type=aggregate_type, aggregate_id=aggregate_id, version=version)


@contextlib.contextmanager
def capture_setting_cleared(name: str):
    """Clear a setting when the block ends, also on error: a caller that catches the error may still commit,
    and on SQLite the setting is a table row that would be committed with it."""
    try:
        yield
    except BaseException:
        # an aborted PostgreSQL transaction refuses the statement; it is rolled back, and the setting with it
        with contextlib.suppress(DatabaseError):
            _set(name, "", local=True)
        raise
    _set(name, "", local=True)


def capture_applying() -> bool:
    """Mark the current transaction as applying a synced event (capture triggers stay silent): True if set,
    then clear it with ``capture_setting_cleared(APPLYING_SETTING)``."""
    if not _capturing():
        return False
    _set(APPLYING_SETTING, "on", local=True)
    return True


@contextlib.contextmanager
def capture_silenced():
    """Inside a transaction: the block's writes are not captured (the consumer's applying marker), whatever the
    declarations say now (triggers installed by migrations stay silent too). For operations that are no change
    of an aggregate, such as ``manage.py flush`` emptying every table."""
    from strangler_sync.capture_sqlite import CONTEXT_TABLE

    installed = connection.vendor == "postgresql" or (
        connection.vendor == "sqlite" and CONTEXT_TABLE in connection.introspection.table_names())
    if not (installed and connection.in_atomic_block):
        yield
        return
    _set(APPLYING_SETTING, "on", local=True)
    with capture_setting_cleared(APPLYING_SETTING):
        yield


class CaptureContextMiddleware:
    """Captured changes made while handling a request carry its X-Request-ID and trace context (after
    RequestIdMiddleware and TraceContextMiddleware).

    The settings are made on the request's first query (a request that never touches the database costs
    nothing) at session level, because the request's transactions have not begun yet, and cleared after.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        values = {name: value for name, value in ((CORRELATION_SETTING, get_request_id()),
                                                  (TRACEPARENT_SETTING, get_traceparent())) if value}
        if not values or connection.vendor != "postgresql":
            return self.get_response(request)
        state = {"set": False}

        def first_query_sets_context(execute, sql, params, many, context):
            if not state["set"]:
                state["set"] = True
                for name, value in values.items():
                    context["cursor"].execute("SELECT set_config(%s, %s, false)", [name, value])
            return execute(sql, params, many, context)

        with connection.execute_wrapper(first_query_sets_context):
            try:
                return self.get_response(request)
            finally:
                if state["set"] and connection.connection is not None:
                    with contextlib.suppress(Exception):  # a broken connection is closed, the settings with it
                        for name in values:
                            _set(name, "", local=False)
