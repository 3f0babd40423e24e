"""System checks (``manage.py check``) for a misconfigured data plane, registered by ``apps.py``.

* ``strangler_sync.E001`` an unknown ``STRANGLER_SYNC`` key (a typo would silently fall back to a default);
* ``strangler_sync.E002`` a broker URL kombu cannot use (unknown transport, bad port, missing library);
* ``strangler_sync.E003`` ``STRANGLER_SYNC["AGGREGATES"]`` that cannot be resolved (bad path, not an
  ``Aggregate``, a name twice);
* ``strangler_sync.E004`` a sync handler for an event type no declared aggregate has (its events would be
  dead-lettered as schema errors);
* ``strangler_sync.E005`` strangler_sync's models differ from its migrations (a migration is missing);
* ``strangler_sync.E006`` an aggregate with ``capture="automatic"`` a trigger cannot capture (a snapshot
  callable, a field type SQL cannot render);
* ``strangler_sync.E007`` an app's capture triggers differ from its migrations (run ``sync_capture_migration``):
  an error, as ``event_publish`` leaves an automatic aggregate's change events to the triggers.
* ``strangler_sync.W001`` no ``VERIFY_TOKEN``: ``/sync/checksums/`` refuses every caller, so verify cannot run.
"""

from __future__ import annotations

import difflib

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db.migrations.autodetector import MigrationAutodetector
from django.db.migrations.exceptions import NodeNotFoundError
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.questioner import MigrationQuestioner
from django.db.migrations.state import ProjectState
from kombu import Connection

from strangler_sync.aggregates import SNAPSHOT, aggregate_of_event
from strangler_sync.conf import KNOWN_KEYS, sync_settings
from strangler_sync.handlers import handlers_bulk_registered, handlers_registered

APP_LABEL = "strangler_sync"


@checks.register()
def check_settings_keys(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    raw = getattr(settings, "STRANGLER_SYNC", None) or {}
    if not isinstance(raw, dict):
        return [checks.Error("STRANGLER_SYNC must be a dict", id="strangler_sync.E001")]
    errors = []
    for key in sorted(set(raw) - KNOWN_KEYS):
        close = difflib.get_close_matches(key, KNOWN_KEYS, n=1)
        errors.append(checks.Error(
            f"unknown STRANGLER_SYNC key {key!r}", hint=f"did you mean {close[0]!r}?" if close else
            "the keys are documented in strangler_sync.conf", obj="settings.STRANGLER_SYNC", id="strangler_sync.E001",
        ))
    return errors


@checks.register()
def check_broker_url(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    try:
        url = sync_settings().broker_url
    except ImproperlyConfigured:
        return []  # reported by check_aggregates
    problem = None
    if "://" not in url:
        problem = "it is not a URL (transport://...)"
    else:
        try:
            # resolves the transport class (imports its library) and parses host/port; does not connect
            problem = None if Connection(url).transport is not None else "no transport"
        except Exception as exc:  # kombu raises KeyError, ValueError, or the transport library's ImportError
            problem = f"{type(exc).__name__}: {exc}"
    if problem is None:
        return []
    return [checks.Error(f"the data plane's broker URL is unusable: {problem}", obj="STRANGLER_SYNC['BROKER_URL']",
                         hint="e.g. amqp://user:password@host:5672// or sqlite-queue://", id="strangler_sync.E002")]


@checks.register()
def check_aggregates(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    try:
        sync_settings()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), obj="STRANGLER_SYNC['AGGREGATES']", id="strangler_sync.E003")]
    return []


@checks.register()
def check_handlers_declared(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    try:
        sync_settings()
    except ImproperlyConfigured:
        return []  # reported by check_aggregates
    errors = []
    handlers = [*handlers_registered().items(), *handlers_bulk_registered().items()]
    for event_type, handler in sorted(handlers, key=lambda item: item[0]):
        aggregate, action = aggregate_of_event(event_type=event_type)
        if aggregate is None:
            problem = f"no aggregate {event_type.rpartition('.')[0]!r} is declared in STRANGLER_SYNC['AGGREGATES']"
        elif action != SNAPSHOT and action not in aggregate.actions:
            problem = f"aggregate {aggregate.name!r} has no action {action!r} ({', '.join(aggregate.event_types)})"
        else:
            continue
        errors.append(checks.Error(f"sync handler {handler.__module__}.{handler.__qualname__} for {event_type!r}: "
                                   f"{problem}", obj=event_type, id="strangler_sync.E004"))
    return errors


@checks.register(checks.Tags.models)
def check_migrations_complete(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    try:
        loader = MigrationLoader(None, ignore_no_migrations=True)
    except NodeNotFoundError as exc:  # e.g. a project's capture migration needs a strangler_sync one not installed
        if MigrationLoader.migrations_module(APP_LABEL)[0] is None:
            return []  # migrations disabled on purpose (MIGRATION_MODULES = None, e.g. a test run)
        return [checks.Error(f"strangler_sync's migrations are incomplete: {exc}",
                             hint="install the strangler_sync the project's migrations were written with",
                             obj=APP_LABEL, id="strangler_sync.E005")]
    if APP_LABEL in loader.unmigrated_apps and MigrationLoader.migrations_module(APP_LABEL)[0] is None:
        return []  # migrations disabled on purpose (MIGRATION_MODULES = None, e.g. a test run)
    autodetector = MigrationAutodetector(
        loader.project_state(), ProjectState.from_apps(apps), MigrationQuestioner(specified_apps={APP_LABEL}),
    )
    changes = autodetector.changes(graph=loader.graph, trim_to_apps={APP_LABEL})
    if not changes.get(APP_LABEL):
        return []
    operations = [op.describe() for migration in changes[APP_LABEL] for op in migration.operations]
    return [checks.Error(
        f"strangler_sync's models have changes its migrations do not have: {'; '.join(operations[:5])}",
        hint="in the toolkit: manage.py makemigrations strangler_sync; in a project: install a strangler_sync whose "
        "migrations match its models",
        obj=APP_LABEL, id="strangler_sync.E005",
    )]


@checks.register()
def check_capture(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    from strangler_sync.capture import CaptureUnsupported, capture_aggregates
    from strangler_sync.capture_migration import capture_state, capture_state_migrated

    try:
        aggregates = capture_aggregates()
    except ImproperlyConfigured:
        return []  # reported by check_aggregates
    messages, app_labels = [], set()
    for config in aggregates:
        app_label = config.model.split(".")[0]
        try:
            capture_state(app_label=app_label)
        except (CaptureUnsupported, LookupError) as exc:
            messages.append(checks.Error(f"aggregate {config.name!r} cannot be captured automatically: {exc}",
                                         obj=config.name, id="strangler_sync.E006"))
            continue
        app_labels.add(app_label)
    try:
        loader = MigrationLoader(None, ignore_no_migrations=True) if app_labels else None
    except NodeNotFoundError:
        return messages  # an inconsistent migration graph: strangler_sync.E005 reports it
    for app_label in sorted(app_labels):
        if capture_state(app_label=app_label) != capture_state_migrated(loader=loader, app_label=app_label):
            messages.append(checks.Error(
                f"{app_label}'s change-capture triggers differ from its migrations: changes to its automatic "
                f"aggregates would not reach the outbox (event_publish leaves them to the triggers)",
                hint=f"manage.py sync_capture_migration {app_label}",
                obj=app_label, id="strangler_sync.E007"))
    return messages


@checks.register()
def check_verify_token(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    try:
        if sync_settings().verify_token:
            return []
    except ImproperlyConfigured:
        return []  # the settings do not build: the checks above say why
    return [checks.Warning(
        "STRANGLER_SYNC['VERIFY_TOKEN'] is not set: /sync/checksums/ refuses every caller, so sync_verify and the "
        "control plane's verify gates cannot read this project",
        hint="set it (or $STRANGLER_SYNC_VERIFY_TOKEN) to the same secret the verify client sends",
        obj="STRANGLER_SYNC['VERIFY_TOKEN']", id="strangler_sync.W001",
    )]
