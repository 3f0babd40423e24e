"""Monolith settings: everything environment-driven, with embedded defaults (SQLite, filesystem broker)."""

from __future__ import annotations

import os
from pathlib import Path

from servicekit import env
from servicekit.logging import logging_config

BASE_DIR = Path(__file__).resolve().parent
PROJECT_NAME = "monolith"

DEBUG = env.env_bool("DEBUG", default=True)
SECRET_KEY = env.secret_key(debug=DEBUG)
ALLOWED_HOSTS = env.env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",  # API tokens (Authorization: Token <key>), for clients that are not browsers
    "drf_spectacular",
    "monolith.accounts",
    "monolith.catalog",
    "monolith.inventory",
    "monolith.cart",
    "monolith.orders",
    "monolith.reviews",
    "strangler_sync",
    "servicekit.identity",  # the identity endpoint the proxies call for requests going to a service
]

MIDDLEWARE = [
    "servicekit.request_id.RequestIdMiddleware",
    "servicekit.trace_context.TraceContextMiddleware",
    "servicekit.errors.ApiJsonErrorsMiddleware",
    "servicekit.http_metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "strangler_sync.middleware.NotOwnerMiddleware",  # 409 JSON when a plain view writes on the non-owner
    # a write's answer says which aggregate versions it emitted; a read through the proxy waits for the client's
    "strangler_sync.read_your_writes.ReadYourWritesMiddleware",
]

ROOT_URLCONF = "monolith.urls"
WSGI_APPLICATION = "monolith.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "monolith.cart.context_processors.cart_summary",
            ],
        },
    },
]

DATABASES = {"default": env.database(var_name="DATABASE_URL", sqlite_name="monolith.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "catalog:product-list"
LOGOUT_REDIRECT_URL = "catalog:product-list"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]

SESSION_ENGINE = "django.contrib.sessions.backends.db"

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "servicekit.openapi.AutoSchema",
    "DEFAULT_PARSER_CLASSES": [
        "servicekit.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "servicekit.errors.api_exception_handler",
    "DEFAULT_METADATA_CLASS": "servicekit.metadata.ApiMetadata",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Storefront API",
    "DESCRIPTION": "The monolith's JSON API. Paths here are what the strangler proxy moves to services.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["servicekit.openapi.public_api_only"],
    # Bodies are published as JSON only: forms cannot carry nested objects, lists or null (servicekit.openapi).
    "PARSER_WHITELIST": ["servicekit.parsers.JSONParser"],
}

CELERY_BROKER_URL = env.broker_url()
CELERY_BROKER_TRANSPORT_OPTIONS = env.broker_transport_options(CELERY_BROKER_URL)
CELERY_TASK_ACKS_LATE = False
CELERY_TASK_DEFAULT_QUEUE = "monolith"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env.env_bool("CELERY_TASK_ALWAYS_EAGER", default=False)

# Data plane (strangler_sync.conf documents every key). The monolith owns everything until a plan
# flips ownership; then it follows the new owner through monolith/*/sync_handlers.py.
STRANGLER_SYNC = {
    "ORIGIN": PROJECT_NAME,
    "QUEUE": "sync.monolith",
    "SUBSCRIPTIONS": ["product.*", "category.*", "stock.*", "review.*"],
    # queues the relay declares before publishing, so no event is dropped before a follower first starts
    "SUBSCRIBERS": {
        "sync.catalog": ["product.*", "category.*"],
        "sync.inventory": ["product.*", "stock.*"],
        "sync.reviews": ["product.*", "review.*"],
    },
    "RELAY_TRIGGER": os.environ.get("STRANGLER_SYNC_RELAY_TRIGGER", "celery"),
    # what the monolith emits and follows: its declarations of the storefront's aggregates
    "AGGREGATES": ["monolith.events.PRODUCT", "monolith.events.CATEGORY", "monolith.events.STOCK",
                   "monolith.events.REVIEW"],
}
CELERY_BEAT_SCHEDULE = {
    "strangler-sync-sweep": {"task": "strangler_sync.relay_sweep", "schedule": 5.0},
    "strangler-sync-cleanup": {"task": "strangler_sync.cleanup", "schedule": 3600.0},
}

# The fake payment provider's simulated timeout (seconds); tests shorten it.
PAYMENTS = {
    "PROVIDER": os.environ.get("PAYMENTS_PROVIDER", "monolith.payments.fake.FakePaymentProvider"),
    "TIMEOUT_SECONDS": float(os.environ.get("PAYMENTS_TIMEOUT_SECONDS", "2.0")),
}

# The inventory service, called by checkout once ownership of "stock" is "inventory" (monolith.orders.saga).
# A short timeout and a circuit breaker keep a slow or dead service from holding checkouts.
INVENTORY_SERVICE = {
    "URL": os.environ.get("INVENTORY_SERVICE_URL", "http://127.0.0.1:8002"),
    "TOKEN": os.environ.get("INVENTORY_SERVICE_TOKEN", ""),  # one of the service's INVENTORY_API_TOKENS
    "TIMEOUT": float(os.environ.get("INVENTORY_SERVICE_TIMEOUT", "2.0")),  # seconds per call
    "BREAKER_FAILURES": int(os.environ.get("INVENTORY_SERVICE_BREAKER_FAILURES", "5")),  # consecutive, to open
    "BREAKER_COOLDOWN": float(os.environ.get("INVENTORY_SERVICE_BREAKER_COOLDOWN", "10.0")),  # seconds open
}

LOGGING = logging_config(service=PROJECT_NAME)

if not DEBUG:
    SESSION_COOKIE_SECURE = env.env_bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.env_bool("CSRF_COOKIE_SECURE", default=True)
