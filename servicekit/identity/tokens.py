"""Signed identities (JWT, HS256 with PyJWT): who the monolith says is asking, for one audience, for a short time.

Claims: ``iss``, ``aud`` (the service), ``iat``, ``exp`` and one of
* a user: ``sub`` (the user's pk as a string), ``usr`` ({username, is_staff, is_superuser}), ``via`` (session,
  basic, token, ... : how the monolith authenticated it; a session needs the CSRF check on unsafe methods);
* a refusal: ``refused`` ({status, exception, message, challenge}): the credentials the monolith refuses;
* neither: anonymous (credentials the monolith ignores, like an expired session).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from servicekit.optional import optional_import

from .conf import ISSUER, identity_key, identity_setting

ALGORITHM = "HS256"


def _jwt():
    return optional_import("jwt", extra="identity", needed_for="servicekit.identity (signed identities)")


class IdentityInvalid(ValueError):
    """A presented identity is not one we signed for this audience, or it expired."""


@dataclass(frozen=True)
class IdentityClaims:
    audience: str
    user_id: str | None = None
    username: str = ""
    is_staff: bool = False
    is_superuser: bool = False
    via: str = ""
    refused: dict | None = None  # {"status": 401|403, "exception": "AuthenticationFailed", "message", "challenge"}
    expires: float = 0.0


def identity_encode(*, claims: IdentityClaims, key: str | None = None, lifetime: float | None = None,
                    now: float | None = None) -> str:
    now = time.time() if now is None else now
    lifetime = identity_setting("LIFETIME") if lifetime is None else lifetime
    payload: dict = {"iss": ISSUER, "aud": claims.audience, "iat": int(now), "exp": int(now + lifetime)}
    if claims.refused is not None:
        payload["refused"] = claims.refused
    elif claims.user_id is not None:
        payload.update(sub=claims.user_id, via=claims.via, usr={
            "username": claims.username, "is_staff": claims.is_staff, "is_superuser": claims.is_superuser})
    return _jwt().encode(payload, key or identity_key(), algorithm=ALGORITHM)


def identity_decode(*, token: str, audience: str, key: str | None = None) -> IdentityClaims:
    """The claims of a token signed with our key for ``audience``; IdentityInvalid for anything else."""
    jwt = _jwt()
    try:
        payload = jwt.decode(token, key or identity_key(), algorithms=[ALGORITHM], audience=audience, issuer=ISSUER,
                             leeway=identity_setting("LEEWAY"), options={"require": ["exp", "iat", "aud", "iss"]})
    except jwt.PyJWTError as exc:
        raise IdentityInvalid(str(exc)) from exc
    refused = payload.get("refused")
    if refused is not None:
        if not isinstance(refused, dict) or refused.get("status") not in (401, 403):
            raise IdentityInvalid("malformed refusal")
        return IdentityClaims(audience=audience, refused=refused, expires=payload["exp"])
    if payload.get("sub") is None:
        return IdentityClaims(audience=audience, expires=payload["exp"])
    user = payload.get("usr") or {}
    return IdentityClaims(audience=audience, user_id=str(payload["sub"]), username=str(user.get("username", "")),
                          is_staff=bool(user.get("is_staff")), is_superuser=bool(user.get("is_superuser")),
                          via=str(payload.get("via", "")), expires=payload["exp"])
