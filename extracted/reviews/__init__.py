"""The reviews service: owns /api/reviews/ and /api/products/<id>/rating/ once review ownership flips to it.

Its Celery app is loaded with Django so `shared_task`s (the sync plane's relay) bind to it.
"""

from .celery import app as celery_app

__all__ = ["celery_app"]
