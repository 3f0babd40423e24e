"""Throwaway PostgreSQL databases for tests that start whole projects on the server of this run's DATABASE_URL
(CI's real-service pass): created on entry, dropped (connections and all) on leaving."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator


@contextlib.contextmanager
def throwaway_databases(prefix: str, projects: dict[str, str]) -> Iterator[tuple[dict[str, str], str]]:
    """``projects``: environment variable -> project name. Yields (variable -> database URL, the run's tag)."""
    import psycopg
    from django.conf import settings

    server = settings.DATABASES["default"]
    base = f"postgres://{server['USER']}:{server.get('PASSWORD') or ''}@{server['HOST']}:{server['PORT'] or 5432}"
    tag = uuid.uuid4().hex[:8]
    names = {var: f"{prefix}_{tag}_{project}" for var, project in projects.items()}
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        for name in names.values():
            admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {var: f"{base}/{name}" for var, name in names.items()}, tag
    finally:
        with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
            for name in names.values():
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
