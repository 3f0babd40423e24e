"""Inventory service settings: environment-driven like the monolith's, with its own database.

Database: INVENTORY_DATABASE_URL; when unset but DATABASE_URL is PostgreSQL, a sibling database on the
same server named `<name>_inventory` (so CI's PostgreSQL pass covers the service too); otherwise SQLite
var/inventory.sqlite3.
"""

from __future__ import annotations

import os
from pathlib import Path

from servicekit import env
from servicekit.logging import logging_config

BASE_DIR = Path(__file__).resolve().parent
PROJECT_NAME = "inventory"

DEBUG = env.env_bool("DEBUG", default=True)
SECRET_KEY = env.secret_key(debug=DEBUG)
ALLOWED_HOSTS = env.env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "drf_spectacular",
    "strangler_sync",
    "extracted.inventory.stock",
]

MIDDLEWARE = [
    "servicekit.request_id.RequestIdMiddleware",
    "servicekit.errors.ApiJsonErrorsMiddleware",
    "servicekit.http_metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "extracted.inventory.urls"
WSGI_APPLICATION = "extracted.inventory.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    },
]


def _database() -> dict:
    if not os.environ.get("INVENTORY_DATABASE_URL") and os.environ.get("DATABASE_URL", "").startswith("postgres"):
        config = env.database(var_name="DATABASE_URL", sqlite_name="inventory.sqlite3")
        config["NAME"] = f"{config['NAME']}_inventory"
        return config
    return env.database(var_name="INVENTORY_DATABASE_URL", sqlite_name="inventory.sqlite3")


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = env.VAR_DIR / "static-inventory"

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "servicekit.errors.api_exception_handler",
    # The monolith's checkout (a service token) or staff users of the service's own database (HTTP Basic).
    # The token class comes first: it sends no challenge, so anonymous writes get 403 like the monolith.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "extracted.inventory.stock.authentication.ServiceTokenAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Inventory service API",
    "DESCRIPTION": "Stock levels and reservations, extracted from the monolith with the same contract.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["extracted.inventory.schema.public_api_only"],
}

# Service-specific settings, read through extracted.inventory.stock.conf (override_settings works).
INVENTORY = {
    # Bearer tokens accepted for staff writes from other services, e.g. the monolith's checkout.
    "API_TOKENS": env.env_list("INVENTORY_API_TOKENS", []),
}

# The data plane (see strangler_sync.conf): stock levels follow the monolith (queue sync.inventory) until
# ownership of "stock" flips here; then every stock write emits stock.changed and the monolith follows.
# Product events only tell which product ids exist (a product without stock reads as zeros, unknown is 404).
STRANGLER_SYNC = {
    "ORIGIN": PROJECT_NAME,
    "QUEUE": "sync.inventory",
    "SUBSCRIPTIONS": ["product.*", "stock.*"],
    "SUBSCRIBERS": {"sync.monolith": ["stock.*"]},
    "RELAY_TRIGGER": os.environ.get("STRANGLER_SYNC_RELAY_TRIGGER", "celery"),
    "AGGREGATES": {
        # The same canonical FIELDS as the monolith's (monolith/settings.py), so verify compares equal rows.
        "stock": {
            "MODEL": "inventory_service.StockItem",
            "ID_FIELD": "product_id",
            "FIELDS": ["product_id", "quantity_on_hand", "quantity_reserved"],
        },
    },
}

CELERY_BROKER_URL = env.broker_url()
CELERY_BROKER_TRANSPORT_OPTIONS = env.broker_transport_options(CELERY_BROKER_URL)
CELERY_TASK_ACKS_LATE = False
CELERY_TASK_DEFAULT_QUEUE = "inventory"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env.env_bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# Once this service owns stock its worker (`celery -A extracted.inventory worker -B`) relays the outbox.
CELERY_BEAT_SCHEDULE = {
    "strangler-sync-sweep": {"task": "strangler_sync.relay_sweep", "schedule": 5.0},
    "strangler-sync-cleanup": {"task": "strangler_sync.cleanup", "schedule": 3600.0},
}

LOGGING = logging_config(service=PROJECT_NAME)
