"""Signed identities for tests: what the monolith's identity endpoint would answer, without a monolith."""

from __future__ import annotations

from servicekit.identity.tokens import IdentityClaims, identity_encode


def identity_token(*, audience: str, user_id: int = 1, username: str = "admin", is_staff: bool = False,
                   via: str = "basic", refused: dict | None = None, key: str | None = None,
                   lifetime: float = 60, now: float | None = None) -> str:
    claims = IdentityClaims(audience=audience, user_id=None if refused else str(user_id), username=username,
                            is_staff=is_staff, via=via, refused=refused)
    return identity_encode(claims=claims, key=key, lifetime=lifetime, now=now)


def identity_meta(**kwargs) -> dict[str, str]:
    """Django test client / APIClient.credentials() keyword for the identity header."""
    return {"HTTP_X_STRANGLER_IDENTITY": identity_token(**kwargs)}


def edge_identity(monolith_url: str, *, audience: str, auth: tuple[str, str] | None = None,
                  cookies: dict[str, str] | None = None, timeout: float = 60) -> dict[str, str]:
    """What a proxy plane adds for a request with these credentials: the monolith endpoint's signed identity."""
    import requests

    response = requests.get(f"{monolith_url}/sync/identity/", params={"audience": audience}, auth=auth,
                            cookies=cookies, timeout=timeout)
    assert response.status_code == 200, response.text
    return {"X-Strangler-Identity": response.headers["X-Strangler-Identity"]}
