"""``NotOwnerMiddleware``: a write that reaches the non-owner from a plain Django view answers 409 JSON.

DRF views need nothing (``NotOwner`` is an ``APIException``); add this to ``MIDDLEWARE`` for views that are
not DRF's, where an uncaught ``NotOwner`` would otherwise be a 500.
"""

from django.http import JsonResponse

from strangler_sync.errors import NotOwner


class NotOwnerMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, NotOwner):
            return JsonResponse(exception.body(), status=exception.status_code)
        return None
