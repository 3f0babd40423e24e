"""Signed per-upstream override tokens: force a request to one upstream (for testing a service in production)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

_CONTEXT = "strangler-override:"


def override_token(secret: str, upstream: str) -> str:
    """`<upstream>.<hex hmac-sha256>`: static per upstream so nginx can verify it with a `map` of precomputed values."""
    digest = hmac.new(secret.encode("utf-8"), (_CONTEXT + upstream).encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{upstream}.{digest}"


def verify_override(secret: str | None, value: str | None, upstreams: Iterable[str]) -> str | None:
    """The upstream a valid token names, else None (no secret configured, unknown upstream or bad signature)."""
    if not secret or not value:
        return None
    name, _, _ = value.strip().rpartition(".")
    if name not in set(upstreams):
        return None
    # Compared as bytes: compare_digest raises TypeError on non-ASCII str, and a header may hold any bytes.
    given = value.strip().encode("utf-8", "surrogateescape")
    if hmac.compare_digest(override_token(secret, name).encode(), given):
        return name
    return None
