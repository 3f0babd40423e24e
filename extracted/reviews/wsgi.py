"""WSGI entry point (gunicorn extracted.reviews.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "extracted.reviews.settings")
application = get_wsgi_application()
