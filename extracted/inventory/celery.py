"""The inventory service's own Celery app (the sync plane's relay runs here once the service owns stock)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "extracted.inventory.settings")

app = Celery("inventory")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
