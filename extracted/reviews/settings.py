"""Reviews service settings: environment-driven like the monolith's, with its own database.

Database: REVIEWS_DATABASE_URL; when unset but DATABASE_URL is PostgreSQL, a sibling database on the
same server named `<name>_reviews` (so CI's PostgreSQL pass covers the service too); otherwise SQLite
var/reviews.sqlite3.
"""

from __future__ import annotations

import os
from pathlib import Path

from servicekit import env
from servicekit.logging import logging_config

BASE_DIR = Path(__file__).resolve().parent
PROJECT_NAME = "reviews"

DEBUG = env.env_bool("DEBUG", default=True)
SECRET_KEY = env.secret_key(debug=DEBUG)
ALLOWED_HOSTS = env.env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "drf_spectacular",
    "strangler_sync",
    "extracted.reviews.ratings",
]

MIDDLEWARE = [
    "servicekit.request_id.RequestIdMiddleware",
    "servicekit.errors.ApiJsonErrorsMiddleware",
    "servicekit.http_metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "extracted.reviews.urls"
WSGI_APPLICATION = "extracted.reviews.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    },
]


def _database() -> dict:
    if not os.environ.get("REVIEWS_DATABASE_URL") and os.environ.get("DATABASE_URL", "").startswith("postgres"):
        config = env.database(var_name="DATABASE_URL", sqlite_name="reviews.sqlite3")
        config["NAME"] = f"{config['NAME']}_reviews"
        return config
    return env.database(var_name="REVIEWS_DATABASE_URL", sqlite_name="reviews.sqlite3")


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = env.VAR_DIR / "static-reviews"

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "servicekit.errors.api_exception_handler",
    # Customers are the monolith's users: their session cookie or Basic credentials are checked by asking
    # the monolith's /api/me/ (REVIEWS["ACCOUNTS_URL"]). It sends no challenge, so anonymous writes get 403.
    "DEFAULT_AUTHENTICATION_CLASSES": ["extracted.reviews.ratings.authentication.MonolithAccountAuthentication"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Inventory service API",
    "DESCRIPTION": "Reviews and ratings, extracted from the monolith with the same contract.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["extracted.reviews.schema.public_api_only"],
}

# Service-specific settings, read through extracted.reviews.ratings.conf (override_settings works).
REVIEWS = {
    # Who is asking: the monolith's "who am I" endpoint, called with the client's own credentials.
    "ACCOUNTS_URL": os.environ.get("REVIEWS_ACCOUNTS_URL", "http://127.0.0.1:8000/api/me/"),
    "ACCOUNTS_TIMEOUT": float(os.environ.get("REVIEWS_ACCOUNTS_TIMEOUT", "2.0")),
}

# The data plane (see strangler_sync.conf): reviews follow the monolith (queue sync.reviews) until ownership
# of "review" flips here; then every write emits review.* and the monolith follows (its product page's rating).
# Product events tell which products exist and are on sale (reviews and ratings of others are 404/400).
STRANGLER_SYNC = {
    "ORIGIN": PROJECT_NAME,
    "QUEUE": "sync.reviews",
    "SUBSCRIPTIONS": ["product.*", "review.*"],
    "SUBSCRIBERS": {"sync.monolith": ["review.*"]},
    "RELAY_TRIGGER": os.environ.get("STRANGLER_SYNC_RELAY_TRIGGER", "celery"),
    "AGGREGATES": {
        # The same canonical FIELDS as the monolith's; the payload adds username and timestamps.
        "review": {
            "MODEL": "reviews_service.Review",
            "FIELDS": ["id", "product_id", "user_id", "rating", "title", "body"],
            "SNAPSHOT": "extracted.reviews.ratings.services.review_payload",
        },
    },
}

CELERY_BROKER_URL = env.broker_url()
CELERY_BROKER_TRANSPORT_OPTIONS = env.broker_transport_options(CELERY_BROKER_URL)
CELERY_TASK_ACKS_LATE = False
CELERY_TASK_DEFAULT_QUEUE = "reviews"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env.env_bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# Once this service owns reviews its worker (`celery -A extracted.reviews worker -B`) relays the outbox.
CELERY_BEAT_SCHEDULE = {
    "strangler-sync-sweep": {"task": "strangler_sync.relay_sweep", "schedule": 5.0},
    "strangler-sync-cleanup": {"task": "strangler_sync.cleanup", "schedule": 3600.0},
}

LOGGING = logging_config(service=PROJECT_NAME)
