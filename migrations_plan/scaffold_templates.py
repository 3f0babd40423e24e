"""Text templates of ``strangler-plan scaffold``: the service project's files, its plan and its route entry.

Each is ``str.format``-ed with the names scaffold.py computes (``{{``/``}}`` are literal braces).
"""

MANAGE = '''#!/usr/bin/env python
"""{service} service: Django's command-line utility (scaffolded by strangler-plan scaffold)."""

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "{package}.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
'''

SETTINGS = '''"""{service} service settings (scaffolded by strangler-plan scaffold from {model_label}; edit freely).

Database: ${env}_DATABASE_URL, else SQLite under $STRANGLER_VAR_DIR (default: var/ next to manage.py).
The broker and the ownership file come from strangler_sync's defaults (CELERY_BROKER_URL,
STRANGLER_OWNERSHIP_FILE): point them at the same broker and the same ownership file as the monolith.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("STRANGLER_VAR_DIR") or BASE_DIR / "var")

SECRET_KEY = os.environ.get("SECRET_KEY", "{secret}")
DEBUG = os.environ.get("DEBUG", "0") == "1"
ALLOWED_HOSTS = os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")
PROJECT_NAME = "{service}"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "drf_spectacular",
    "strangler_sync",
    "{package}",
]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "{package}.urls"
WSGI_APPLICATION = "{package}.wsgi.application"
TEMPLATES = [{{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}}]

if os.environ.get("{env}_DATABASE_URL"):
    import dj_database_url

    DATABASES = {{"default": dj_database_url.parse(os.environ["{env}_DATABASE_URL"])}}
else:
    DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": VAR_DIR / "{service}.sqlite3"}}}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

REST_FRAMEWORK = {{
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [],  # reads only so far: add the monolith's scheme with the writes
    "UNAUTHENTICATED_USER": None,
}}
SPECTACULAR_SETTINGS = {{"TITLE": "{service} service API"}}

# The data plane: this service follows the monolith's {aggregate} events until ownership flips, then emits
# them. Its declaration ({package}/aggregates.py) keeps the monolith's contract (verify hashes the canonical
# fields on both sides).
STRANGLER_SYNC = {{
    "ORIGIN": PROJECT_NAME,
    "QUEUE": "sync.{service}",
    "SUBSCRIPTIONS": ["{aggregate}.*"],
    "SUBSCRIBERS": {{"{monolith_queue}": ["{aggregate}.*"]}},  # the monolith's queue
    "RELAY_TRIGGER": "none",  # the relay process sweeps the outbox (manage.py sync_relay)
    "AGGREGATES": ["{package}.aggregates.{const}"],
}}
'''

WSGI = '''"""WSGI entry point of the {service} service."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "{package}.settings")
application = get_wsgi_application()
'''

INIT = '''"""The {service} service, extracted from the monolith's {model_label} (by strangler-plan scaffold)."""
'''

APPS = '''"""App config: the sync handlers register when the app is ready."""

from django.apps import AppConfig


class ServiceConfig(AppConfig):
    name = "{package}"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from {package} import handlers  # noqa: F401 - registers the sync handlers
'''

MODELS = '''"""The {service} service's copy of the monolith's {model_label}: the same columns, keys as plain values.

Relations to models the service does not have are kept as their key values ({fk_note}).
"""

from django.db import models


class {model}(models.Model):
{field_lines}

    class Meta:
        ordering = ["{pk}"]
'''

AGGREGATES = '''"""The {service} service's aggregates (scaffolded by strangler-plan scaffold from {model_label}).

The {aggregate} contract as the monolith declares it (or, where it declares none, as its columns are), bound
to this service's model. A copy, not an import: the service must not need the monolith's code. Change it only
together with the monolith's declaration (a new schema version for a removed or retyped field).
"""

{uuid_import}from strangler_sync.aggregates import Aggregate, Schema

{declaration}'''

HANDLERS = '''"""Sync handlers: apply the owner's {aggregate} events to this service's table (idempotent upserts).

The consumer's inbox skips redeliveries and its version guard stale events before these run. Events this
service emitted itself (after the ownership flip) come back on its own queue and are skipped.
"""

from strangler_sync.conf import sync_settings
from strangler_sync.handlers import SyncEvent, sync_handler

from {package}.aggregates import {const}
from {package}.models import {model}

# Payload names this table has a column for; the rest (a name the owner only shows) is not stored here.
COLUMNS = frozenset(f.attname for f in {model}._meta.concrete_fields if not f.primary_key)


def _key(event: SyncEvent):
    return {const}.key_value(event.aggregate_id)


@sync_handler({upsert_events})
def {aggregate}_upsert(*, event: SyncEvent) -> None:
    if event.origin == sync_settings().origin:
        return
    renamed = {{{const}.fields.get(name, name): value for name, value in event.payload.items()}}
    values = {{attr: value for attr, value in renamed.items() if attr in COLUMNS}}
    {model}.objects.update_or_create(pk=_key(event), defaults=values)
'''

DELETE_HANDLER = '''

@sync_handler({const}.event("deleted"))
def {aggregate}_delete(*, event: SyncEvent) -> None:
    if event.origin == sync_settings().origin:
        return
    {model}.objects.filter(pk=_key(event)).delete()
'''

API = '''"""The {service} service's API: the reads of {path} (list and detail), same paths as the monolith's.

Writes come with the ownership flip: the coverage gate of the plan names each one the monolith serves.
"""

from rest_framework import generics, serializers

from {package}.models import {model}


class {model}Serializer(serializers.ModelSerializer):
    class Meta:
        model = {model}
        fields = "__all__"


class {model}List(generics.ListAPIView):
    queryset = {model}.objects.all()
    serializer_class = {model}Serializer


class {model}Detail(generics.RetrieveAPIView):
    queryset = {model}.objects.all()
    serializer_class = {model}Serializer
'''

HEALTH = '''"""Liveness (/healthz: the process answers) and readiness (/readyz: the database answers)."""

from django.db import connection
from django.http import JsonResponse


def healthz(request):
    return JsonResponse({{"status": "ok"}})


def readyz(request):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any driver error means not ready
        return JsonResponse({{"status": "unavailable", "error": f"{{type(exc).__name__}}"}}, status=503)
    return JsonResponse({{"status": "ready"}})
'''

URLS = '''"""{service} service URLs: {path} (the monolith's paths), the data plane at /sync/, schema and health."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from {package} import api, health

urlpatterns = [
    path("healthz", health.healthz),
    path("readyz", health.readyz),
    path("sync/", include("strangler_sync.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="openapi-schema"),
    path("{route}", api.{model}List.as_view()),
    path("{route}<str:pk>/", api.{model}Detail.as_view()),
]
'''

ROUTE_FILE = '''# Route file by strangler-plan scaffold: everything goes to the monolith until the plan moves it.
upstreams:
  monolith: {monolith_url}
  {service}: {upstream}
monolith: monolith
routes:
'''

ROUTE_ENTRY = '''{dash}- prefix: {path}
{indent}mode: monolith
{indent}service: {service}
{indent}methods: [GET, HEAD, OPTIONS]  # writes stay with the monolith until the ownership flip
{indent}fallback: true
{indent}timeout: 10
'''

PLAN = '''# Extraction of {path} ({model_label}, aggregate {aggregate}) to the {service} service.
# Scaffolded by strangler-plan scaffold: check it with `strangler-plan check {plan_path}`; soak times and
# samples are the production defaults (${env}_SOAK_SECONDS, ${env}_MIN_SHADOW_SAMPLE shorten them).
plan: {plan}
description: Serve {path} from the {service} service, then give it {aggregate} writes.
service: {service}
routes: [{path}]
proxy_metrics: ${{STRANGLER_PROXY_ADMIN_URL:-http://127.0.0.1:8081}}/metrics
sync_projects: [monolith, {service}]
route_file: {route_file}
workdir: {workdir}
settings: {settings}

steps:
  - name: deploy
    kind: deploy
    description: the {service} service is running next to the monolith (migrated, answering /healthz)
    gates:
      healthy: [monolith, {service}]

  - name: backfill
    kind: backfill
    description: first copy of every {aggregate} through the broker; the service's consumer keeps it current
    actions:
      - run: ["{{python}}", {manage}, sync_backfill, --aggregate, {aggregate}, --direct, --no-progress]
    gates:
      healthy: [{service}]

  - name: verify
    kind: verify
    description: the service holds exactly the monolith's rows and the relays keep up
    gates:
      verify: [{aggregate}]
      max_relay_backlog: ${{{env}_MAX_RELAY_BACKLOG:-100}}
      max_relay_lag_seconds: ${{{env}_MAX_RELAY_LAG:-30}}

  - name: shadow
    kind: shadow
    description: the monolith still answers; every read is replayed to the service and compared
    actions:
      - route: {path}
        set: {{mode: shadow}}
    gates:
      verify: [{aggregate}]
      coverage: {{}}

  - name: canary-10
    kind: canary
    description: 10 % of users (sticky) are served by the service
    actions:
      - route: {path}
        set: {{mode: canary, weight: 10}}
    gates:
      min_shadow_sample: ${{{env}_MIN_SHADOW_SAMPLE:-500}}
      max_diff_rate: 0.01
      min_soak_seconds: ${{{env}_SOAK_SECONDS:-900}}
    watch:
      max_error_rate_increase: 0.02
      max_p99_seconds: 1.0

  - name: reads-to-service
    kind: cutover
    description: every read of {path} goes to the service (the monolith stays the fallback)
    actions:
      - route: {path}
        set: {{mode: service, weight: null}}
    gates:
      max_error_rate_increase: 0.01
      max_p99_seconds: 1.0
      min_soak_seconds: ${{{env}_SOAK_SECONDS:-900}}
    watch:
      max_error_rate_increase: 0.02
      max_p99_seconds: 1.0

  - name: flip-ownership
    kind: flip_ownership
    description: the service owns {aggregate} writes; the monolith follows its events
    actions:
      - ownership: {{{aggregate}: {service}}}
      - route: {path}
        set: {{methods: null}}
    gates:
      coverage: {{}}
      verify: [{aggregate}]
      max_relay_backlog: 0
      max_relay_lag_seconds: ${{{env}_MAX_RELAY_LAG:-30}}
      max_error_rate_increase: 0.01
      min_soak_seconds: ${{{env}_SOAK_SECONDS:-900}}

  - name: retire-monolith-path
    kind: retire
    description: no more fallback to the monolith for {path}
    actions:
      - route: {path}
        set: {{fallback: false}}
    gates:
      verify: [{aggregate}]
      max_relay_backlog: ${{{env}_MAX_RELAY_BACKLOG:-100}}
      max_error_rate_increase: 0.01
      min_soak_seconds: ${{{env}_SOAK_SECONDS:-900}}
'''
