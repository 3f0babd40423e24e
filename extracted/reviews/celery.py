"""The reviews service's own Celery app (the sync plane's relay runs here once the service owns reviews)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "extracted.reviews.settings")

app = Celery("reviews")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
