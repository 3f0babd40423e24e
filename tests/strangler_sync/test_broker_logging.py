"""The embedded brokers log no kombu noise: a relay run prints its result, not "No hostname was supplied".

kombu warns on every connection whose URL names no host when the transport defaults one (kombu's filesystem
transport does); sqlite_transport and strangler_sync's filesystem transport declare no default host, and
`filesystem://` resolves to the latter for Celery too (the relay trigger's connection). Run as the commands a
newcomer types, in a fresh SQLite project: a write (which sends the Celery relay trigger), a relay pass, a
backfill into the outbox and to the broker, and the ownership command.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WARNING = "No hostname was supplied"
EMIT = """
from django.db import transaction
from monolith.catalog.models import Category
from strangler_sync.services import aggregate_reemit
with transaction.atomic():
    category = Category.objects.create(name="Logging", slug="logging")
print(aggregate_reemit(aggregate_type="category", ids=[category.id]))
"""


def _manage(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


@pytest.mark.backend_independent  # its own SQLite and embedded broker, whatever the suite uses
@pytest.mark.parametrize("broker_url", ["", "filesystem://"], ids=["sqlite-queue (default)", "filesystem"])
def test_relay_once_prints_no_hostname_warning(broker_url, tmp_path):
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(STRANGLER_VAR_DIR=str(tmp_path), CELERY_BROKER_URL=broker_url, PYTHONWARNINGS="ignore")
    _manage("migrate", "-v0", env=env)
    emitted = _manage("shell", "-c", EMIT, env=env)  # also sends the Celery relay trigger (a connection)
    relayed = _manage("sync_relay", "--once", env=env)
    assert "published 1 event(s)" in relayed
    others = [_manage("sync_backfill", "--aggregate", "category", "--no-progress", env=env),
              _manage("sync_backfill", "--aggregate", "category", "--direct", "--no-progress", env=env),
              _manage("sync_ownership", env=env)]
    for output in (emitted, relayed, *others):
        assert WARNING not in output
