"""WSGI entry point (gunicorn extracted.catalog.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "extracted.catalog.settings")
application = get_wsgi_application()
