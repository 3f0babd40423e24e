"""Suite-wide fixtures and the real-service policy.

Tests marked `postgres`, `postgres_server`, `rabbitmq`, `nginx`, `chromium` or `prometheus` need that real service.
Where it is missing they are skipped on a developer machine, but fail when the service is named in STRANGLER_REQUIRE
(comma-separated; CI sets it), so CI can never pass by skipping them.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from urllib.parse import urlparse

import pytest

from tests.wheel_build import wheel_file  # noqa: F401  (one wheel per session for every test of it)

# A developer's direct `pytest` run must not read or flip the demo's ownership file (dev.py test already
# points STRANGLER_VAR_DIR at a temporary folder, which covers it too).
os.environ.setdefault(
    "STRANGLER_OWNERSHIP_FILE", os.path.join(tempfile.mkdtemp(prefix="strangler-test-"), "ownership.json")
)

# The checksum endpoints and the verify client (in-process, and the demo's and projects' processes) share it.
os.environ.setdefault("STRANGLER_SYNC_VERIFY_TOKEN", "test-verify-token")
# The signing key of identities at the edge (servicekit.identity): the monolith, services and their processes.
os.environ.setdefault("STRANGLER_IDENTITY_KEY", "test-identity-key-0123456789abcdef0123456789")

RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
POSTGRES_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REQUIRED = {s.strip() for s in os.environ.get("STRANGLER_REQUIRE", "").split(",") if s.strip()}


def _tcp_open(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def _database_is_postgres() -> bool:
    from django.conf import settings

    return "postgresql" in settings.DATABASES["default"]["ENGINE"]


def _missing(service: str) -> str | None:
    """Why the service is unavailable, or None when it is there."""
    if service == "postgres":
        return None if _database_is_postgres() else "the Django database is not PostgreSQL (set DATABASE_URL)"
    if service == "postgres_server":  # tests that make their own databases, not Django's
        return None if _tcp_open(POSTGRES_SERVER_URL, 5432) else f"PostgreSQL is not reachable at {POSTGRES_SERVER_URL}"
    if service == "rabbitmq":
        return None if _tcp_open(RABBITMQ_URL, 5672) else f"RabbitMQ is not reachable at {RABBITMQ_URL}"
    if service == "nginx":
        return None if shutil.which("nginx") or os.path.exists("/usr/sbin/nginx") else "nginx is not installed"
    if service == "chromium":
        return None if shutil.which("chromium") else "chromium is not installed"
    if service == "prometheus":
        return None if shutil.which("prometheus") or os.path.exists("/usr/bin/prometheus") else (
            "prometheus is not installed")
    return None


# Test modules that never reach the Django database or the broker (the traffic plane against stub upstreams,
# file formats, CLI parsing): they run once, in CI's embedded-default pass. Listed here, not guessed, so a
# module that starts using the database must be taken off the list by whoever changes it.
BACKEND_INDEPENDENT_DIRS = ("tests/strangler_proxy/",)
BACKEND_DEPENDENT_MODULES = (
    "tests/strangler_proxy/test_addon_real_services.py",  # live monolith and catalog projects
    "tests/strangler_proxy/test_nginx_monolith.py",  # a live monolith behind nginx
    "tests/strangler_proxy/test_identity_conformance.py",  # live monolith and catalog, on PostgreSQL too
)
BACKEND_INDEPENDENT_MODULES = (
    "tests/test_file_schemas.py",
    "tests/test_cli_errors.py",
    "tests/test_toolkit_names_no_storefront.py",
    "tests/test_docs_site.py",
)


def pytest_collection_modifyitems(config, items):
    root = str(config.rootpath)
    for item in items:
        path = os.path.relpath(str(item.path), root)
        if path in BACKEND_INDEPENDENT_MODULES or (
                path.startswith(BACKEND_INDEPENDENT_DIRS) and path not in BACKEND_DEPENDENT_MODULES):
            item.add_marker(pytest.mark.backend_independent)


def pytest_runtest_setup(item):
    for service in ("postgres", "postgres_server", "rabbitmq", "nginx", "chromium", "prometheus"):
        if item.get_closest_marker(service) is None:
            continue
        reason = _missing(service)
        if reason is None:
            continue
        if service in REQUIRED:
            pytest.fail(f"required service missing: {reason} (STRANGLER_REQUIRE={','.join(sorted(REQUIRED))})")
        pytest.skip(reason)


@pytest.fixture
def rabbitmq_url() -> str:
    return RABBITMQ_URL
