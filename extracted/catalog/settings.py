"""Catalog service settings: environment-driven like the monolith's, with its own database.

Database: CATALOG_DATABASE_URL; when unset but DATABASE_URL is PostgreSQL, a sibling database on the
same server named `<name>_catalog` (so CI's PostgreSQL pass covers the service too, and Django's test
runner makes `test_<name>_catalog`, never touching the monolith's); otherwise SQLite var/catalog.sqlite3.
"""

from __future__ import annotations

import os
from pathlib import Path

from servicekit import env
from servicekit.logging import logging_config

BASE_DIR = Path(__file__).resolve().parent
PROJECT_NAME = "catalog"

DEBUG = env.env_bool("DEBUG", default=True)
SECRET_KEY = env.secret_key(debug=DEBUG)
ALLOWED_HOSTS = env.env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "drf_spectacular",
    "strangler_sync",
    "extracted.catalog.products",
]

MIDDLEWARE = [
    "servicekit.request_id.RequestIdMiddleware",
    "servicekit.errors.ApiJsonErrorsMiddleware",
    "servicekit.http_metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "extracted.catalog.urls"
WSGI_APPLICATION = "extracted.catalog.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,  # DRF's browsable API and the OpenAPI docs page
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    },
]


def _database() -> dict:
    if not os.environ.get("CATALOG_DATABASE_URL") and os.environ.get("DATABASE_URL", "").startswith("postgres"):
        config = env.database(var_name="DATABASE_URL", sqlite_name="catalog.sqlite3")
        config["NAME"] = f"{config['NAME']}_catalog"
        return config
    return env.database(var_name="CATALOG_DATABASE_URL", sqlite_name="catalog.sqlite3")


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = env.VAR_DIR / "static-catalog"

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "servicekit.errors.api_exception_handler",
    # Other services holding a token, or staff users of the service's own database (HTTP Basic). The token
    # class comes first: it sends no challenge, so anonymous writes get 403 exactly like the monolith.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "extracted.catalog.products.authentication.ServiceTokenAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Catalog service API",
    "DESCRIPTION": "Products and categories, extracted from the monolith with the same contract.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["extracted.catalog.schema.public_api_only"],
}

# Service-specific settings, read through extracted.catalog.products.conf (override_settings works).
CATALOG_SERVICE = {
    # Bearer tokens accepted for staff writes from other services (comma-separated env).
    "API_TOKENS": env.env_list("CATALOG_API_TOKENS", []),
}

# The data plane (see strangler_sync.conf): this service follows the monolith's products and categories
# (queue sync.catalog) until ownership flips, then emits the same events for the monolith to follow.
# FIELDS are the canonical names hashed by /sync/checksums/ and sent as event payloads: they must equal
# the monolith's (monolith/settings.py) or verify sees every row as different. Timestamps are included,
# so a follower keeps the owner's created_at/updated_at (ordering=newest answers the same on both).
_CATALOG_FIELDS = {
    "product": [
        "id", "sku", "slug", "name", "description", "price", "currency", "is_active", "category_id", "images",
        "created_at", "updated_at",
    ],
    "category": ["id", "name", "slug", "parent_id", "description", "created_at", "updated_at"],
}
STRANGLER_SYNC = {
    "ORIGIN": PROJECT_NAME,
    "QUEUE": "sync.catalog",
    "SUBSCRIPTIONS": ["product.*", "category.*"],
    # The monolith follows products and categories once this service owns them; the inventory and reviews
    # services keep learning which products exist (and are on sale) from whoever owns them.
    "SUBSCRIBERS": {
        "sync.monolith": ["product.*", "category.*"],
        "sync.inventory": ["product.*"],
        "sync.reviews": ["product.*"],
    },
    "RELAY_TRIGGER": os.environ.get("STRANGLER_SYNC_RELAY_TRIGGER", "celery"),
    "AGGREGATES": {
        "product": {"MODEL": "catalog_service.Product", "ID_FIELD": "id", "FIELDS": _CATALOG_FIELDS["product"]},
        "category": {"MODEL": "catalog_service.Category", "ID_FIELD": "id", "FIELDS": _CATALOG_FIELDS["category"]},
    },
}

CELERY_BROKER_URL = env.broker_url()
CELERY_BROKER_TRANSPORT_OPTIONS = env.broker_transport_options(CELERY_BROKER_URL)
CELERY_TASK_ACKS_LATE = False
CELERY_TASK_DEFAULT_QUEUE = "catalog"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env.env_bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# Once this service owns writes its worker (`celery -A extracted.catalog worker -B`) relays the outbox:
# each commit triggers the relay task, the sweep publishes anything a lost trigger left behind.
CELERY_BEAT_SCHEDULE = {
    "strangler-sync-sweep": {"task": "strangler_sync.relay_sweep", "schedule": 5.0},
    "strangler-sync-cleanup": {"task": "strangler_sync.cleanup", "schedule": 3600.0},
}

LOGGING = logging_config(service=PROJECT_NAME)
