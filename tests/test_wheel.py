"""The published wheel: only the toolkit, every data file it loads, and it runs installed with no repository around.

Builds the wheel from a copy of the repository's files (git ls-files: what a clean checkout holds, so a stale
build/ folder cannot leak into it), lists it, then installs it into a fresh virtualenv outside the repository
and runs the console scripts and a tiny Django project there, with the working directory outside the
repository and nothing of it on sys.path. The virtualenv is made once per test session (~1 min).
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from tests.wheel_build import INSTALL_TIMEOUT, clean_env, repository_files, run

ROOT = Path(__file__).resolve().parent.parent
TOOLKIT = ("servicekit", "strangler_proxy", "strangler_sync", "migrations_plan")
EXAMPLE = ("monolith", "extracted", "demo", "deploy", "tests", "bench")

pytestmark = [pytest.mark.slow, pytest.mark.installed_wheel]


@pytest.fixture(scope="session")
def wheel_names(wheel_file) -> list[str]:
    with zipfile.ZipFile(wheel_file) as archive:
        return archive.namelist()


@pytest.fixture(scope="session")
def venv(wheel_file, tmp_path_factory) -> Path:
    """A fresh virtualenv with the wheel (no extras) installed; returns its bin/ folder."""
    home = tmp_path_factory.mktemp("wheel-venv")
    assert ROOT not in home.parents and home != ROOT
    run([sys.executable, "-m", "venv", home / "venv"], cwd=home, env=clean_env(), timeout=INSTALL_TIMEOUT)
    bin_dir = home / "venv" / "bin"
    run([bin_dir / "python", "-m", "pip", "install", "-q", wheel_file], cwd=home, env=clean_env(),
        timeout=INSTALL_TIMEOUT)
    return bin_dir


@pytest.fixture
def outside(tmp_path) -> Path:
    """A working directory outside the repository."""
    assert ROOT not in tmp_path.parents
    return tmp_path


# --- the wheel's contents -------------------------------------------------------------------------------------


def test_the_wheel_holds_the_toolkit_only(wheel_file, wheel_names, capsys):
    files = [n for n in wheel_names if not n.endswith("/")]
    with capsys.disabled():  # shown in every run's output: the numbers the release notes quote
        print(f"\nwheel {wheel_file.name}: {len(files)} files, {wheel_file.stat().st_size:,} bytes "
              f"({sum(info.file_size for info in zipfile.ZipFile(wheel_file).infolist()):,} bytes unpacked)")
    top_level = {n.split("/")[0] for n in files if not n.split("/")[0].endswith(".dist-info")}
    assert top_level == set(TOOLKIT), top_level
    assert not [n for n in files if n.split("/")[0] in EXAMPLE]
    assert not [n for n in files if "__pycache__" in n or n.endswith(".pyc")]


def test_every_file_of_the_toolkit_packages_is_in_the_wheel(wheel_names):
    """Python modules, migrations, and whatever the planes load at run time (route file, plans, templates)."""
    shipped = set(wheel_names)
    expected = [n for n in repository_files() if n.split("/")[0] in TOOLKIT and "__pycache__" not in n]
    missing = [n for n in expected if n not in shipped]
    assert not missing, f"left out of the wheel: {missing}"
    data = [n for n in expected if not n.endswith(".py")]
    print(f"\ndata files in the wheel: {data}")
    # the ones the code opens by path next to itself
    assert "strangler_proxy/routes.yaml" in shipped  # strangler_proxy.loader.DEFAULT_ROUTE_FILE
    assert [n for n in shipped if n.startswith("migrations_plan/plans/") and n.endswith(".yaml")]  # loader.PLANS_DIR
    assert [n for n in shipped if n.startswith("strangler_sync/migrations/0001")]


def test_the_metadata_declares_what_the_planes_import(wheel_names, wheel_file):
    [name] = [n for n in wheel_names if n.endswith(".dist-info/METADATA")]
    metadata = Parser().parsestr(zipfile.ZipFile(wheel_file).read(name).decode())
    core = {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower() for r in metadata.get_all("Requires-Dist")
            if "extra ==" not in r}
    assert {"django", "djangorestframework", "kombu", "amqp", "pyyaml", "requests", "prometheus-client"} <= core
    assert not core & {"sqlalchemy", "mitmproxy", "celery", "psycopg", "gunicorn", "whitenoise", "drf-spectacular"}
    assert {"proxy", "celery", "postgres", "service"} <= set(metadata.get_all("Provides-Extra"))


# --- installed, outside the repository ------------------------------------------------------------------------


def test_the_repository_is_not_on_the_installed_path(venv, outside):
    done = run([venv / "python", "-c", "import importlib.util, strangler_sync; print(strangler_sync.__file__); "
                "print([m for m in ('monolith', 'extracted', 'demo', 'deploy') if importlib.util.find_spec(m)])"],
               cwd=outside, env=clean_env())
    location, example = done.stdout.splitlines()
    assert "site-packages" in location and not location.startswith(str(ROOT))
    assert example == "[]"


def test_the_console_scripts_start_and_load_their_data_files(venv, outside):
    run([venv / "strangler-proxy", "check"], cwd=outside, env=clean_env())  # the packaged default route file
    routes = outside / "routes.yaml"
    shutil.copy(ROOT / "strangler_proxy" / "routes.yaml", routes)
    run([venv / "strangler-proxy", "check", routes], cwd=outside, env=clean_env())
    table = run([venv / "strangler-proxy", "table"], cwd=outside, env=clean_env()).stdout  # the packaged default
    assert "monolith" in table
    # the packaged plans, checked against the packaged route file (catalog's upstream is in it) and against the
    # example's full route file (the inventory and reviews plans name upstreams only that one declares)
    plan = run([venv / "strangler-plan", "check", "catalog"], cwd=outside, env=clean_env()).stdout
    assert "site-packages/migrations_plan/plans/catalog.yaml" in plan
    shutil.copy(ROOT / "deploy" / "routes.yaml", outside / "all-routes.yaml")
    plans = run([venv / "strangler-plan", "check", "--routes", outside / "all-routes.yaml"], cwd=outside,
                env=clean_env()).stdout
    assert plans.count("ok: ") == len(list((ROOT / "migrations_plan" / "plans").glob("*.yaml"))), plans
    for script in ("strangler-sync", "strangler-plan", "strangler-replay", "strangler-dashboard"):
        assert "usage:" in run([venv / script, "--help"], cwd=outside, env=clean_env()).stdout


def test_a_missing_extra_is_named(venv, outside):
    done = run([venv / "strangler-proxy", "run"], cwd=outside, env=clean_env(), check=False)
    assert done.returncode == 2
    assert "pip install 'strangler-fig[proxy]'" in done.stderr and "Traceback" not in done.stderr


TINY_SETTINGS = """\
from servicekit import env

SECRET_KEY = "wheel-smoke-test"
DEBUG = True
ALLOWED_HOSTS = ["localhost"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "strangler_sync",
]
ROOT_URLCONF = "tinysite.urls"
DATABASES = {"default": env.database(var_name="TINY_DATABASE_URL", sqlite_name="tiny.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
PROJECT_NAME = "tiny"
STRANGLER_SYNC = {"RELAY_TRIGGER": "none", "SUBSCRIBERS": {"sync.helpdesk": ["ticket.*"]}}
"""
TINY_URLS = """\
from django.urls import include, path

urlpatterns = [path("sync/", include("strangler_sync.urls"))]
"""
OUTBOX_ROW = """\
from django.utils import timezone
from strangler_sync.models import OutboxEvent
now = timezone.now()
OutboxEvent.objects.create(event_type="ticket.updated", aggregate_type="ticket", aggregate_id="T-1", version=1,
                           payload={"id": "T-1"}, occurred_at=now, origin="tiny", next_attempt_at=now)
"""
TINY_MANAGE = """\
import os
import re
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tinysite.settings")
from django.core.management import execute_from_command_line

execute_from_command_line(sys.argv)
"""


@pytest.fixture
def tiny_project(outside) -> Path:
    project = outside / "tinyproject"
    (project / "tinysite").mkdir(parents=True)
    (project / "tinysite" / "__init__.py").write_text("")
    (project / "tinysite" / "settings.py").write_text(TINY_SETTINGS)
    (project / "tinysite" / "urls.py").write_text(TINY_URLS)
    (project / "manage.py").write_text(TINY_MANAGE)
    return project


def test_a_django_project_with_strangler_sync_migrates_checks_and_relays(venv, tiny_project, outside):
    manage = [venv / "python", tiny_project / "manage.py"]
    elsewhere = outside / "elsewhere"
    elsewhere.mkdir()
    run([*manage, "migrate", "--no-input"], cwd=elsewhere, env=clean_env())
    # the embedded default's state lands in the project's var/, not in site-packages nor the working directory
    assert (tiny_project / "var" / "tiny.sqlite3").is_file()
    assert not (elsewhere / "var").exists()
    run([*manage, "check"], cwd=elsewhere, env=clean_env())
    shown = run([*manage, "showmigrations", "strangler_sync"], cwd=elsewhere, env=clean_env()).stdout
    assert "[X] 0001" in shown and "[ ]" not in shown
    # the relay publishes a pending outbox row on the default broker (strangler_sync's sqlite-queue transport,
    # on the kombu pip chose for the wheel's requirements): the message waits in the project's var/ for its queue
    run([*manage, "shell", "-c", OUTBOX_ROW], cwd=elsewhere, env=clean_env())
    relayed = run([*manage, "sync_relay", "--once"], cwd=elsewhere, env=clean_env())
    assert "published 1 event(s)" in relayed.stdout
    with sqlite3.connect(tiny_project / "var" / "broker.sqlite3") as broker:
        waiting = broker.execute("SELECT count(*) FROM messages WHERE queue = 'sync.helpdesk'").fetchone()[0]
    assert waiting == 1


def test_the_tiny_project_names_the_extras_it_lacks(venv, tiny_project):
    manage = [venv / "python", tiny_project / "manage.py"]
    celery = run([*manage, "shell", "-c", "import strangler_sync.tasks"], cwd=tiny_project, env=clean_env(),
                 check=False)
    assert celery.returncode != 0 and "pip install 'strangler-fig[celery]'" in celery.stderr
    postgres = run([*manage, "check"], cwd=tiny_project, check=False,
                   env=clean_env(TINY_DATABASE_URL="postgres://postgres@127.0.0.1:5432/tiny"))
    assert postgres.returncode != 0 and "pip install 'strangler-fig[postgres]'" in postgres.stderr
    otel = run([*manage, "check"], cwd=tiny_project, check=False,
               env=clean_env(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9"))  # tracing asked for, no [otel]
    assert otel.returncode != 0 and "pip install 'strangler-fig[otel]'" in otel.stderr


TINY_SERVICE_SETTINGS = """\
from servicekit.service_settings import service_settings

globals().update(service_settings(package=__package__, project="tiny", database_var_name="TINY_DATABASE_URL",
                                  apps=[], authentication=[], api_title="Tiny", api_description="Tiny service"))
"""


def test_service_settings_need_the_service_extra(venv, tiny_project):
    (tiny_project / "tinysite" / "service_settings.py").write_text(TINY_SERVICE_SETTINGS)
    done = run([venv / "python", tiny_project / "manage.py", "check"], cwd=tiny_project, check=False,
               env=clean_env(DJANGO_SETTINGS_MODULE="tinysite.service_settings"))
    assert done.returncode != 0 and "pip install 'strangler-fig[service]'" in done.stderr
