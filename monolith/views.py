"""Project-level error handlers: JSON bodies under /api/, HTML pages elsewhere."""

from django.views import defaults

from servicekit.errors import json_404, json_500


def page_not_found(request, exception):
    if request.path.startswith("/api/"):
        return json_404(request, exception)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if request.path.startswith("/api/"):
        return json_500(request)
    return defaults.server_error(request)
