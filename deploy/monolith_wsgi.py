"""The monolith's WSGI app for gunicorn in the compose stack, with its collected static files served by WhiteNoise.

runserver serves /static/ only in DEBUG; behind gunicorn with DEBUG=0 nothing would. WhiteNoise wraps the
WSGI app (no settings change): files from STATIC_ROOT (the `monolith-collectstatic` job fills it), cached
for an hour, everything else goes to Django.
"""

from django.conf import settings
from whitenoise import WhiteNoise

from monolith.wsgi import application as django_application

application = WhiteNoise(django_application, root=settings.STATIC_ROOT, prefix=settings.STATIC_URL, max_age=3600)
