"""Read a project's settings from the environment, with embedded defaults that need no running service."""

from __future__ import annotations

import importlib.util
import os
import secrets
from pathlib import Path

import dj_database_url

from servicekit.optional import missing_extra

# The folder holding servicekit: the repository in a source checkout, site-packages once the wheel is installed.
REPO_ROOT = Path(__file__).resolve().parent.parent


def project_root(settings_module: str | None = None) -> Path:
    """The folder of the Django project in use: where its settings' top-level package lives (by Django's layout
    also where manage.py is), found without importing the settings; the working directory when no settings
    module is set or it lives in site-packages (an installed project)."""
    name = settings_module or os.environ.get("DJANGO_SETTINGS_MODULE")
    if name:
        try:
            spec = importlib.util.find_spec(name.split(".")[0])
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.origin and spec.has_location:
            origin = Path(spec.origin).resolve()
            root = origin.parent.parent if spec.submodule_search_locations else origin.parent
            if "site-packages" not in root.parts and "dist-packages" not in root.parts:
                return root
    return Path.cwd()


def var_dir() -> Path:
    """$STRANGLER_VAR_DIR, else `var/` in the project's folder (project_root)."""
    explicit = os.environ.get("STRANGLER_VAR_DIR")
    return Path(explicit) if explicit else project_root() / "var"


# Everything the embedded default writes (SQLite files, broker folders, recordings) lives here.
VAR_DIR = var_dir()


class ConfigError(RuntimeError):
    """A setting read from the environment is missing or malformed."""


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if not raw:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def secret_key(*, debug: bool, var_name: str = "SECRET_KEY") -> str:
    """The env's secret key; in DEBUG a random one is made (sessions reset on restart), otherwise required."""
    value = os.environ.get(var_name)
    if value:
        return value
    if debug:
        return "dev-insecure-" + secrets.token_urlsafe(32)
    raise ConfigError(f"{var_name} must be set when DEBUG is off")


def database(*, var_name: str, sqlite_name: str) -> dict:
    """A Django DATABASES entry from a DATABASE_URL-style variable; default: SQLite file under var/.

    SQLite gets WAL and IMMEDIATE transactions so several processes of the demo (web, relay,
    consumer) can write without 'database is locked' on upgrade from read to write.
    """
    url = os.environ.get(var_name)
    if not url:
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{VAR_DIR / sqlite_name}"
    try:
        config = dj_database_url.parse(url, conn_max_age=0)
    except Exception as exc:  # dj_database_url raises several types on junk input
        raise ConfigError(f"{var_name}={url!r} is not a database URL: {exc}") from exc
    if config["ENGINE"] == "django.db.backends.postgresql" and not any(
        importlib.util.find_spec(driver) for driver in ("psycopg", "psycopg2")
    ):
        raise missing_extra(package="psycopg", extra="postgres", needed_for=f"{var_name} (PostgreSQL)")
    if config["ENGINE"] == "django.db.backends.sqlite3":
        config["OPTIONS"] = {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
        config["TEST"] = {"NAME": None}
    else:
        config.setdefault("TEST", {})
    return config


def broker_url(*, var_name: str = "CELERY_BROKER_URL") -> str:
    """The Celery/kombu broker; default: strangler_sync's SQLite queue under var/ (no server needed)."""
    return os.environ.get(var_name) or "sqlite-queue://"


def broker_transport_options(url: str) -> dict:
    """Transport options: the file of the SQLite queue, folders for the filesystem transport, publisher
    confirms for AMQP."""
    if url.startswith("sqlite-queue://"):
        return {"database": str(VAR_DIR / "broker.sqlite3")}
    if url.startswith("filesystem://"):
        folder = VAR_DIR / "broker"
        (folder / "queue").mkdir(parents=True, exist_ok=True)
        (folder / "processed").mkdir(parents=True, exist_ok=True)
        (folder / "control").mkdir(parents=True, exist_ok=True)
        return {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
        }
    if url.startswith(("amqp://", "pyamqp://", "amqps://")):
        return {"confirm_publish": True}
    return {}
