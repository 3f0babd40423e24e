"""The catalog service's own Celery app (the sync plane's relay runs here once the service owns writes)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "extracted.catalog.settings")

app = Celery("catalog")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
