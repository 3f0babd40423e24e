"""Capture triggers as a project's migration: the ``CaptureTriggers`` operation and the service writing it.

``manage.py sync_capture_migration <app_label>`` compares the app's automatic-capture declarations with
the newest ``CaptureTriggers`` in its migrations and, when they differ, writes a migration whose operation
installs the current triggers (and removes those of aggregates no longer captured). Unapplying it restores
the previous state. The SQL is frozen in the migration (as Django freezes model state), so a later change of
a declaration needs a new migration, and re-running the command without changes writes nothing.

The migration holds the SQL of PostgreSQL and SQLite and runs the one of the database it migrates; on any
other database it does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.db import migrations
from django.db.migrations.autodetector import MigrationAutodetector
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.writer import MigrationWriter

from strangler_sync.capture import capture_aggregates, capture_sql
from strangler_sync.conf import sync_settings

MIGRATION_SUFFIX = "strangler_capture"
VENDORS = ("postgresql", "sqlite")


class CaptureTriggers(migrations.operations.base.Operation):
    """Install the capture triggers of ``capture`` ({aggregate: {vendor: {"install": [...], "remove": [...]}}})
    and remove those of ``previous`` not in it; backwards, the reverse. No model state changes."""

    reversible = True
    reduces_to_sql = True

    def __init__(self, capture: dict, previous: dict | None = None):
        self.capture = capture
        self.previous = previous or {}

    def deconstruct(self):
        return self.__class__.__qualname__, [], {"capture": self.capture, "previous": self.previous}

    def state_forwards(self, app_label, state):
        pass

    @staticmethod
    def _run(schema_editor, old: dict, new: dict) -> None:
        vendor = schema_editor.connection.vendor
        for name in sorted(set(old) - set(new)):
            for statement in old[name].get(vendor, {}).get("remove", []):
                schema_editor.execute(statement, params=None)
        for name in sorted(new):
            for statement in new[name].get(vendor, {}).get("install", []):
                schema_editor.execute(statement, params=None)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        self._run(schema_editor, self.previous, self.capture)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        self._run(schema_editor, self.capture, self.previous)

    def describe(self):
        return f"Install change-capture triggers for {', '.join(sorted(self.capture)) or 'no aggregate'}"

    @property
    def migration_name_fragment(self):
        return MIGRATION_SUFFIX


def capture_state(*, app_label: str) -> dict:
    """The triggers the app's current declarations need: {aggregate: {vendor: {"install": [...], "remove": [...]}}}."""
    origin = sync_settings().origin
    state = {}
    for config in capture_aggregates(app_label=app_label):
        state[config.name] = {}
        for vendor in VENDORS:
            install, remove = capture_sql(config=config, origin=origin, vendor=vendor)
            state[config.name][vendor] = {"install": install, "remove": remove}
    return state


def capture_state_migrated(*, loader: MigrationLoader, app_label: str) -> dict:
    """The triggers the app's migrations install (the newest ``CaptureTriggers`` on the leaf's plan)."""
    leaves = loader.graph.leaf_nodes(app_label)
    if not leaves:
        return {}
    for key in reversed(loader.graph.forwards_plan(leaves[-1])):
        if key[0] != app_label:
            continue
        for operation in reversed(loader.get_migration(*key).operations):
            if isinstance(operation, CaptureTriggers):
                return operation.capture
    return {}


@dataclass(frozen=True)
class CaptureMigration:
    path: Path | None  # None: the migrations are in step, nothing written
    aggregates: tuple[str, ...]


def capture_migration_write(*, app_label: str, dry_run: bool = False) -> CaptureMigration:
    """Write the app's next capture migration if its declarations differ from what its migrations install."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    if app_label not in loader.migrated_apps:
        raise ValueError(f"app {app_label!r} has no migrations (is it in INSTALLED_APPS?)")
    current = capture_state(app_label=app_label)
    previous = capture_state_migrated(loader=loader, app_label=app_label)
    if current == previous:
        return CaptureMigration(path=None, aggregates=tuple(sorted(current)))
    leaf = loader.graph.leaf_nodes(app_label)[-1]
    dependencies = [leaf, *loader.graph.leaf_nodes("strangler_sync")]
    number = (MigrationAutodetector.parse_number(leaf[1]) or 0) + 1
    migration = migrations.Migration(f"{number:04d}_{MIGRATION_SUFFIX}", app_label)
    migration.dependencies = dependencies
    migration.operations = [CaptureTriggers(capture=current, previous=previous)]
    writer = MigrationWriter(migration)
    path = Path(writer.path)
    if not dry_run:
        path.write_text(writer.as_string())
    return CaptureMigration(path=path, aggregates=tuple(sorted(current)))
