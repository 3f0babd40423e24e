"""The DRF authentication class of a service behind the proxy: the signed identity the edge resolved.

No identity header: not ours to decide (None; other classes may authenticate, e.g. a service token). A header
that does not verify (signature, expiry, audience, issuer): refused. A signed refusal: the monolith's answer to
those credentials, raised with the same exception and message (and challenge), so both sides answer alike. A
user: ``request.user`` is an ``IdentityUser`` (no row here). A session-authenticated user must pass Django's
CSRF check on unsafe methods, as with DRF's SessionAuthentication on the monolith.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from .conf import identity_setting
from .tokens import IdentityInvalid, identity_decode

_RAISES = {cls.__name__: cls for cls in (exceptions.AuthenticationFailed, exceptions.NotAuthenticated,
                                         exceptions.PermissionDenied)}
CHALLENGE_ATTRIBUTE = "strangler_identity_challenge"  # set on the DRF request by a refusal with a challenge


@dataclass(frozen=True)
class IdentityUser:
    """The user the monolith says is asking (no row here)."""

    id: int | str
    username: str
    is_staff: bool = False
    is_superuser: bool = False
    is_authenticated: bool = True
    is_anonymous: bool = False
    is_active: bool = True

    @property
    def pk(self) -> int | str:
        return self.id

    def get_username(self) -> str:
        return self.username

    def __str__(self) -> str:
        return self.username


def header_meta_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


class EdgeIdentityAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        token = request.META.get(header_meta_key(identity_setting("HEADER")))
        if not token:
            return None
        try:
            claims = identity_decode(token=token, audience=identity_setting("AUDIENCE"))
        except IdentityInvalid as exc:
            raise exceptions.AuthenticationFailed("Invalid identity.") from exc
        if claims.refused is not None:
            refused = claims.refused
            if refused.get("challenge"):
                setattr(request, CHALLENGE_ATTRIBUTE, str(refused["challenge"]))
            raise _RAISES.get(str(refused.get("exception")), exceptions.AuthenticationFailed)(
                str(refused.get("message", "")))
        if claims.user_id is None:
            return None  # the monolith sees these credentials as anonymous (an expired session)
        user_id: int | str = int(claims.user_id) if claims.user_id.isdigit() else claims.user_id
        user = IdentityUser(id=user_id, username=claims.username, is_staff=claims.is_staff,
                            is_superuser=claims.is_superuser)
        if claims.via == "session":
            csrf_enforce(request)
        return user, claims

    def authenticate_header(self, request) -> str | None:
        # No challenge of its own, like the monolith (session auth first): anonymous writes get 403, not 401;
        # a refusal the monolith answered with a challenge (401) carries it.
        return getattr(request, CHALLENGE_ATTRIBUTE, None)


def csrf_enforce(request) -> None:
    """Django's CSRF check, as DRF's SessionAuthentication.enforce_csrf does it (the token pair needs no key)."""
    check = authentication.CSRFCheck(lambda req: None)
    check.process_request(request)
    reason = check.process_view(request, None, (), {})
    if reason:
        raise exceptions.PermissionDenied(f"CSRF Failed: {reason}")


class EdgeIdentityScheme(OpenApiAuthenticationExtension):
    """Documented as what clients send through the proxy: the monolith's session cookie, or HTTP Basic."""

    target_class = "servicekit.identity.authentication.EdgeIdentityAuthentication"
    name = ["cookieAuth", "basicAuth"]

    def get_security_definition(self, auto_schema):
        return [{"type": "apiKey", "in": "cookie", "name": settings.SESSION_COOKIE_NAME},
                {"type": "http", "scheme": "basic"}]
