"""The catalog service: owns /api/products/ and /api/categories/ once the strangler proxy moves them here.

Its Celery app is loaded with Django so `shared_task`s (the sync plane's relay) bind to it.
"""

from .celery import app as celery_app

__all__ = ["celery_app"]
