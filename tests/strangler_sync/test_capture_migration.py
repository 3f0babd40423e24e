"""``sync_capture_migration`` writes the app's capture migration once, and migrating installs / removes the triggers.

The catalog's migrations are copied into a temporary package (``MIGRATION_MODULES``) so the test never
writes into the repository.
"""

from __future__ import annotations

import shutil
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

import monolith.catalog.migrations
from monolith.catalog.models import Product
from strangler_sync.models import OutboxEvent
from tests.strangler_sync.test_capture import capture_triggers

AUTOMATIC_PRODUCT = "tests.strangler_sync.test_capture.AUTOMATIC"
DATA_MIGRATION = '''from django.db import migrations


def rename(apps, schema_editor):
    apps.get_model("catalog", "Product").objects.update(name="renamed by a data migration")


class Migration(migrations.Migration):
    dependencies = [("catalog", "0005_strangler_capture")]
    operations = [migrations.RunPython(rename, migrations.RunPython.noop)]
'''


@pytest.fixture
def migrations_package(sync_env, tmp_path, monkeypatch):
    """The catalog's migrations in a private package, and the product aggregate declared automatic."""
    settings = sync_env
    name = "capture_migrations_" + uuid.uuid4().hex[:8]
    package = tmp_path / name
    shutil.copytree(Path(monolith.catalog.migrations.__file__).parent, package,
                    ignore=shutil.ignore_patterns("__pycache__", "*_strangler_capture.py"))
    monkeypatch.syspath_prepend(str(tmp_path))
    settings.MIGRATION_MODULES = {**getattr(settings, "MIGRATION_MODULES", {}), "catalog": name}
    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "AGGREGATES": [AUTOMATIC_PRODUCT, "monolith.events.CATEGORY"]}
    yield package
    for module in [m for m in sys.modules if m.startswith(name)]:
        del sys.modules[module]


def run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("sync_capture_migration", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_the_command_writes_one_migration_and_then_reports_no_changes(migrations_package, sync_env):
    assert "Would write" in run("catalog", "--dry-run")
    assert not (migrations_package / "0005_strangler_capture.py").exists()
    with pytest.raises(CommandError, match="differ from its migrations"):
        run("catalog", "--check")
    assert "Wrote" in run("catalog")
    text = (migrations_package / "0005_strangler_capture.py").read_text()
    assert "strangler_sync.capture_migration.CaptureTriggers" in text and "strangler_capture_product" in text
    assert "No changes" in run("catalog")
    assert "No changes" in run("catalog", "--check")
    assert sorted(p.name for p in migrations_package.glob("0005*")) == ["0005_strangler_capture.py"]

    # a declaration change (product no longer captured) needs a migration removing the triggers
    sync_env.STRANGLER_SYNC = {**sync_env.STRANGLER_SYNC, "AGGREGATES": ["monolith.events.CATEGORY"]}
    assert "Wrote" in run("catalog")
    assert (migrations_package / "0006_strangler_capture.py").exists()
    assert "No changes" in run("catalog")


@pytest.mark.django_db
def test_bad_input_is_a_one_line_error(migrations_package):
    with pytest.raises(CommandError, match="no migrations|No installed app"):
        run("no_such_app")


INSTALLED = {"postgresql": {"strangler_capture_product_write", "strangler_capture_product_update"},
             "sqlite": {"strangler_capture_product_insert", "strangler_capture_product_update",
                        "strangler_capture_product_delete"}}


@pytest.mark.django_db(transaction=True)
def test_migrating_installs_the_triggers_a_data_migration_is_captured_and_unmigrating_removes_them(
        migrations_package):
    product = Product.objects.create(sku="S-1", slug="s-1", name="Before", price=Decimal("3.10"))
    before = OutboxEvent.objects.count()  # 1 when the project's own migrations capture products, else 0
    migrated = capture_triggers()
    run("catalog")
    (migrations_package / "0006_rename.py").write_text(DATA_MIGRATION)
    try:
        call_command("migrate", "catalog", verbosity=0)
        assert capture_triggers() == INSTALLED[connection.vendor]
        (event,) = OutboxEvent.objects.all()[before:]
        assert (event.event_type, event.aggregate_id, event.version) == ("product.updated", str(product.pk),
                                                                         before + 1)
        assert event.payload["name"] == "renamed by a data migration" and event.payload["price"] == "3.10"
    finally:
        call_command("migrate", "catalog", "0004", verbosity=0)
    try:
        assert capture_triggers() == set()
        Product.objects.filter(pk=product.pk).update(name="after unmigrating")
        assert OutboxEvent.objects.count() == before + 1
    finally:
        if migrated:  # leave the database as the project's migrations made it (its 0005 has the same name)
            call_command("migrate", "catalog", "0005", verbosity=0)

def _capture_messages() -> list:
    from strangler_sync.checks import check_capture

    return check_capture()


@pytest.mark.django_db
def test_system_checks_report_a_missing_capture_migration_and_an_uncapturable_aggregate(migrations_package,
                                                                                         sync_env):
    (missing,) = _capture_messages()
    assert missing.id == "strangler_sync.E007" and "sync_capture_migration catalog" in missing.hint
    run("catalog")
    assert _capture_messages() == []
    sync_env.STRANGLER_SYNC = {**sync_env.STRANGLER_SYNC,
                               "AGGREGATES": ["tests.strangler_sync.test_capture.AUTOMATIC_WITH_SNAPSHOT"]}
    (error,) = _capture_messages()
    assert error.id == "strangler_sync.E006" and "snapshot" in error.msg
