"""The monolith's identity endpoint: who these credentials are, signed for one service (GET ?audience=<name>).

Mounted under the ops prefix /sync/ (``path("sync/identity/", IdentityApi.as_view())``), so neither proxy plane
passes a client's request to it (they call it themselves). It authenticates with the project's own DRF
authentication classes, exactly as any of its API views would, and always answers 200 with the signed identity
in the header (``STRANGLER_IDENTITY["HEADER"]``) and the body: a user, anonymous, or a refusal carrying the status
and message the monolith would have answered, which the service then answers itself. Anything else (a 4xx for a
bad audience, a 5xx, no answer) means "cannot tell", and the proxies refuse the request (503), never forward it.
"""

from __future__ import annotations

import re

from rest_framework import exceptions
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from servicekit.errors import error_body

from .conf import identity_setting
from .tokens import IdentityClaims, identity_encode

AUDIENCE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")  # an upstream name of the route file
# The refusals a service can re-raise with the same status, code and message (servicekit.errors' body).
REFUSALS = (exceptions.AuthenticationFailed, exceptions.NotAuthenticated, exceptions.PermissionDenied)
_VIA = {"SessionAuthentication": "session", "BasicAuthentication": "basic", "TokenAuthentication": "token"}


def authenticator_name(authenticator) -> str:
    """How a request was authenticated: session, basic, token, else the class name."""
    name = type(authenticator).__name__
    return next((via for cls in type(authenticator).__mro__ if (via := _VIA.get(cls.__name__))), name)


class IdentityApi(APIView):
    permission_classes = [AllowAny]
    throttle_classes: list = []
    schema = None  # internal: not part of the public API

    def perform_authentication(self, request) -> None:
        """Deferred to get(): a refusal is signed for the service instead of answered here."""

    def get(self, request):
        audience = request.query_params.get("audience", "")
        if not AUDIENCE_PATTERN.match(audience):
            return Response(error_body("invalid", "?audience= must name a service (an upstream name)."), status=400)
        try:
            user = request.user
        except REFUSALS as exc:
            challenge = self.get_authenticate_header(request)
            status = 401 if challenge and not isinstance(exc, exceptions.PermissionDenied) else 403
            claims = IdentityClaims(audience=audience, refused={
                "status": status, "exception": type(exc).__name__, "message": str(exc.detail),
                "challenge": challenge if status == 401 else None})
        else:
            if user is not None and user.is_authenticated:
                claims = IdentityClaims(audience=audience, user_id=str(user.pk), username=user.get_username(),
                                        is_staff=bool(user.is_staff), is_superuser=bool(user.is_superuser),
                                        via=authenticator_name(request.successful_authenticator))
            else:
                claims = IdentityClaims(audience=audience)
        token = identity_encode(claims=claims)
        response = Response({"identity": token, "user_id": claims.user_id, "refused": claims.refused})
        response[identity_setting("HEADER")] = token
        response["Cache-Control"] = "private, no-store"
        return response
