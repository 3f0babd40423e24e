"""Customers are the monolith's users: their credentials are checked by the monolith's /api/me/.

Through the proxy a browser sends the monolith's session cookie (and CSRF token) with every request;
an API client may send HTTP Basic. Either is passed on, unchanged, to ``REVIEWS["ACCOUNTS_URL"]``; its
answer says who the user is. A session-authenticated write must pass Django's CSRF check, exactly as
with the monolith's SessionAuthentication (the CSRF cookie/token pair needs no secret key to check).
Reads never fail because the monolith is unreachable (they go on anonymously); writes get 503.
"""

from __future__ import annotations

from dataclasses import dataclass

import requests
from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.permissions import SAFE_METHODS

from .conf import reviews_setting


@dataclass(frozen=True)
class MonolithUser:
    """The user the monolith says is asking (no row here)."""

    id: int
    username: str
    is_staff: bool = False
    is_authenticated: bool = True
    is_anonymous: bool = False
    is_active: bool = True

    @property
    def pk(self) -> int:
        return self.id

    def get_username(self) -> str:
        return self.username

    def __str__(self) -> str:
        return self.username


class MonolithAccountAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        session = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
        basic = authentication.get_authorization_header(request)
        if not session and not basic:
            return None
        headers = {"Accept": "application/json"}
        if basic:
            headers["Authorization"] = basic.decode("latin-1")
        if session:
            headers["Cookie"] = f"{settings.SESSION_COOKIE_NAME}={session}"
        try:
            response = requests.get(reviews_setting("ACCOUNTS_URL"), headers=headers,
                                    timeout=reviews_setting("ACCOUNTS_TIMEOUT"))
        except requests.RequestException as exc:
            if request.method in SAFE_METHODS:
                return None
            from servicekit.errors import Unavailable  # not at import: DRF loads this module while servicekit loads

            raise Unavailable("Cannot check who you are right now; please try again.",
                              details={"reason": type(exc).__name__}) from exc
        if response.status_code != 200:
            if basic:  # wrong username/password: refused, as the monolith refuses them
                raise exceptions.AuthenticationFailed("Invalid username/password.")
            return None  # an expired session is anonymous, as in the monolith
        data = response.json()
        user = MonolithUser(id=int(data["id"]), username=str(data["username"]), is_staff=bool(data.get("is_staff")))
        if session and not basic:
            self._enforce_csrf(request)
        return user, None

    @staticmethod
    def _enforce_csrf(request) -> None:
        check = authentication.CSRFCheck(lambda req: None)
        check.process_request(request)
        reason = check.process_view(request, None, (), {})
        if reason:
            raise exceptions.PermissionDenied(f"CSRF Failed: {reason}")

    def authenticate_header(self, request) -> None:
        # No challenge, like the monolith (session auth first): anonymous writes get 403, not 401.
        return None


class MonolithAccountScheme(OpenApiAuthenticationExtension):
    """Documented as what clients send: the monolith's session cookie, or HTTP Basic."""

    target_class = "extracted.reviews.ratings.authentication.MonolithAccountAuthentication"
    name = ["cookieAuth", "basicAuth"]

    def get_security_definition(self, auto_schema):
        return [{"type": "apiKey", "in": "cookie", "name": settings.SESSION_COOKIE_NAME},
                {"type": "http", "scheme": "basic"}]
