"""The demo on either setup, for the module-scoped fixtures of tests that drive the whole running demo: the
embedded default (SQLite, sqlite-queue), or throwaway PostgreSQL databases (one per project, on the server of
this run's DATABASE_URL) with RabbitMQ under a namespace of their own."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RABBITMQ_URL
from tests.test_demo import Demo
from tests.throwaway_databases import throwaway_databases

PROJECT_DATABASES = {"DATABASE_URL": "monolith", "CATALOG_DATABASE_URL": "catalog",
                     "INVENTORY_DATABASE_URL": "inventory", "REVIEWS_DATABASE_URL": "reviews"}

DEMO_SETUPS = [
    # the embedded run ignores the suite's DATABASE_URL and broker (tests.test_demo.Demo does not pass them on):
    # CI's real-service pass need not repeat it
    pytest.param("embedded", marks=pytest.mark.backend_independent),
    pytest.param("postgres-rabbitmq", marks=[pytest.mark.postgres, pytest.mark.rabbitmq]),
]


@contextlib.contextmanager
def real_services_env(prefix: str) -> Iterator[dict[str, str]]:
    """The demo's settings for its PostgreSQL + RabbitMQ run: databases and namespace made for it alone."""
    with throwaway_databases(prefix, PROJECT_DATABASES) as (urls, tag):
        yield {**urls, "CELERY_BROKER_URL": RABBITMQ_URL, "STRANGLER_SYNC_NAMESPACE": f"{prefix}-{tag}"}


@contextlib.contextmanager
def demo_running(setup: str, var_dir: Path, *, prefix: str) -> Iterator[Demo]:
    """The demo on `setup` (a DEMO_SETUPS value), ready, and every process of it killed afterwards."""
    with contextlib.ExitStack() as stack:
        env = stack.enter_context(real_services_env(prefix)) if setup == "postgres-rabbitmq" else {}
        started = Demo(var_dir, env=env)
        try:
            started.wait_ready(timeout=400)  # the demo backfills the catalog first; CI boxes are busy
            yield started
        finally:
            if started.process.poll() is None:
                started.kill_everything()
