"""kill -9 under load, on the embedded default (sqlite-queue://, SQLite) and on PostgreSQL + RabbitMQ.

Writers update products while the consumer and the relay are killed -9 three times each; afterwards
nothing is lost or applied twice and verify finds 0 differences without repair (tests/strangler_sync/
faults.py). The issue's 10,000 updates: ``bench/sync_faults.py``; here $STRANGLER_FAULT_UPDATES (1,500).
"""

from __future__ import annotations

import os

import pytest

from tests.strangler_sync.faults import fault_run
from tests.strangler_sync.processes import PgDatabases

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

UPDATES = int(os.environ.get("STRANGLER_FAULT_UPDATES", 1500))


@pytest.mark.backend_independent  # SQLite files and a broker of its own: CI's pass 1 runs it
def test_kill_9_on_the_embedded_default_loses_nothing(tmp_path):
    result = fault_run(tmp_path, broker_url="sqlite-queue://", databases=None, updates=UPDATES)
    assert len(result["kills"]) == 6


@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_kill_9_on_postgresql_and_rabbitmq_loses_nothing(tmp_path, rabbitmq_url):
    result = fault_run(tmp_path, broker_url=rabbitmq_url, databases=PgDatabases(), updates=UPDATES)
    assert len(result["kills"]) == 6
