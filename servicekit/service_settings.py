"""The Django settings every extracted service shares; each service's settings.py adds only what is its own.

A service's settings module (``<package>/settings.py``, next to its ``urls.py`` and ``wsgi.py``) starts with

    globals().update(service_settings(package=__package__, project="catalog",
                                      database_var_name="CATALOG_DATABASE_URL", ...))

and then defines its own namespaced settings (API tokens, STRANGLER_SYNC). Its database comes from the variable
it names (`<PROJECT>_DATABASE_URL`, spelled out so a search for the variable finds where it is read); when that
is unset but `DATABASE_URL` is PostgreSQL, a sibling database on the same server named `<name>_<project>` (so
CI's PostgreSQL pass covers the services too, and Django's test runner makes `test_<name>_<project>`, never
touching the monolith's); otherwise SQLite `var/<project>.sqlite3`.
"""

from __future__ import annotations

import os

from servicekit import env
from servicekit.logging import logging_config
from servicekit.optional import optional_import


def service_database(*, project: str, var_name: str) -> dict:
    """The service's DATABASES["default"]: its own URL, else a PostgreSQL sibling of the monolith's, else SQLite."""
    sqlite_name = f"{project}.sqlite3"
    if not os.environ.get(var_name) and os.environ.get("DATABASE_URL", "").startswith("postgres"):
        config = env.database(var_name="DATABASE_URL", sqlite_name=sqlite_name)
        config["NAME"] = f"{config['NAME']}_{project}"
        return config
    return env.database(var_name=var_name, sqlite_name=sqlite_name)


def service_settings(
    *,
    package: str,
    project: str,
    database_var_name: str,
    apps: list[str],
    authentication: list[str],
    api_title: str,
    api_description: str,
    schema_hooks: list[str] | None = None,
) -> dict[str, object]:
    """Settings for the service project `package` (any importable package holding its urls and wsgi modules):
    environment-driven like the monolith's, with its own database. `schema_hooks`: extra drf-spectacular
    preprocessing hooks (dotted paths) run after `servicekit.openapi.public_api_only`, which keeps internal
    endpoints out of the public schema."""
    if not package:
        raise env.ConfigError("service_settings(package=...) must name the service's package (pass __package__)")
    optional_import("drf_spectacular", extra="service", needed_for="servicekit.service_settings (OpenAPI schema)")
    debug = env.env_bool("DEBUG", default=True)
    broker = env.broker_url()
    return {
        "DEBUG": debug,
        "SECRET_KEY": env.secret_key(debug=debug),
        "ALLOWED_HOSTS": env.env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"]),
        "INSTALLED_APPS": [
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "rest_framework",
            "drf_spectacular",
            "strangler_sync",
            "servicekit.identity",  # system checks of the signed identity the proxies forward
            *apps,
        ],
        "MIDDLEWARE": [
            "servicekit.request_id.RequestIdMiddleware",
            "servicekit.trace_context.TraceContextMiddleware",
            "servicekit.errors.ApiJsonErrorsMiddleware",
            "servicekit.http_metrics.RequestMetricsMiddleware",
            "django.middleware.security.SecurityMiddleware",
            "django.middleware.common.CommonMiddleware",
            # writes say what they emitted, reads through the proxy wait for what the client wrote (409 behind)
            "strangler_sync.read_your_writes.ReadYourWritesMiddleware",
        ],
        "ROOT_URLCONF": f"{package}.urls",
        "WSGI_APPLICATION": f"{package}.wsgi.application",
        "TEMPLATES": [
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "DIRS": [],
                "APP_DIRS": True,  # DRF's browsable API and the OpenAPI docs page
                "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
            },
        ],
        "DATABASES": {"default": service_database(project=project, var_name=database_var_name)},
        "DEFAULT_AUTO_FIELD": "django.db.models.BigAutoField",
        "LANGUAGE_CODE": "en-us",
        "TIME_ZONE": "UTC",
        "USE_I18N": True,
        "USE_TZ": True,
        "STATIC_URL": "static/",
        "STATIC_ROOT": env.VAR_DIR / f"static-{project}",
        "REST_FRAMEWORK": {
            "DEFAULT_SCHEMA_CLASS": "servicekit.openapi.AutoSchema",
            "DEFAULT_PARSER_CLASSES": [
                "servicekit.parsers.JSONParser",
                "rest_framework.parsers.FormParser",
                "rest_framework.parsers.MultiPartParser",
            ],
            "EXCEPTION_HANDLER": "servicekit.errors.api_exception_handler",
            "DEFAULT_METADATA_CLASS": "servicekit.metadata.ApiMetadata",
            "DEFAULT_AUTHENTICATION_CLASSES": authentication,
            "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
            "PAGE_SIZE": 20,
        },
        "SPECTACULAR_SETTINGS": {
            "TITLE": api_title,
            "DESCRIPTION": api_description,
            "VERSION": "1.0.0",
            "SERVE_INCLUDE_SCHEMA": False,
            "COMPONENT_SPLIT_REQUEST": True,
            "PREPROCESSING_HOOKS": ["servicekit.openapi.public_api_only", *(schema_hooks or [])],
            # Bodies are published as JSON only: forms cannot carry nested objects, lists or null.
            "PARSER_WHITELIST": ["servicekit.parsers.JSONParser"],
        },
        "CELERY_BROKER_URL": broker,
        "CELERY_BROKER_TRANSPORT_OPTIONS": env.broker_transport_options(broker),
        "CELERY_TASK_ACKS_LATE": False,
        "CELERY_TASK_DEFAULT_QUEUE": project,
        "CELERY_RESULT_BACKEND": None,
        "CELERY_TASK_ALWAYS_EAGER": env.env_bool("CELERY_TASK_ALWAYS_EAGER", default=False),
        # Once the service owns an aggregate its worker (`celery -A <package> worker -B`) relays the
        # outbox: each commit triggers the relay task, the sweep publishes anything a lost trigger left behind.
        "CELERY_BEAT_SCHEDULE": {
            "strangler-sync-sweep": {"task": "strangler_sync.relay_sweep", "schedule": 5.0},
            "strangler-sync-cleanup": {"task": "strangler_sync.cleanup", "schedule": 3600.0},
        },
        "LOGGING": logging_config(service=project),
        # Who is asking, resolved once at the edge (servicekit.identity): identities must be signed for this
        # service, which is its upstream name in the route file. The key comes from $STRANGLER_IDENTITY_KEY.
        "STRANGLER_IDENTITY": {"AUDIENCE": project},
    }
