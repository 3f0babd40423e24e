"""Bearer-token authentication for service-to-service writes: the caller acts as staff, with no user row."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions


class ServicePrincipal:
    """The user a valid service token authenticates as: staff, with no row in the auth tables."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = True
    is_superuser = False
    pk = None
    id = None
    username = "service"

    def __str__(self) -> str:
        return self.username


class ServiceTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token>` where the token is one of `tokens()`; each service names its setting."""

    keyword = "Bearer"

    def tokens(self) -> Iterable[str]:
        raise NotImplementedError("a service subclasses this and returns its configured API tokens")

    def authenticate(self, request):
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Invalid bearer header: expected one token.")
        presented = parts[1]
        for token in self.tokens():
            # constant-time comparison against each configured token
            if token and hmac.compare_digest(presented, token.encode()):
                return ServicePrincipal(), None
        raise exceptions.AuthenticationFailed("Invalid service token.")

    def authenticate_header(self, request) -> None:
        # No challenge, like the monolith (session auth first): anonymous writes get 403, not 401.
        return None


class ServiceTokenScheme(OpenApiAuthenticationExtension):
    target_class = "servicekit.service_token.ServiceTokenAuthentication"
    match_subclasses = True
    name = "serviceToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer"}
