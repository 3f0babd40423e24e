"""Signed override tokens: force a request to one upstream (for testing a service in production).

A token is scoped and short-lived: ``v1.<upstream>.<methods>.<expiry>.<hex hmac-sha256>``, where ``methods`` is
``safe`` (GET, HEAD, OPTIONS) or ``any`` and ``expiry`` the UTC hour it stops working at (``YYYYMMDDHH``), at
most MAX_LIFETIME_HOURS ahead. Expiry is on an hour so the nginx plane, which cannot compute an HMAC, can
verify tokens with maps of the precomputed ones (see ``nginx_token_maps``). Both planes compare the token's
bytes exactly: a different case or extra whitespace is no token.

The token is the first comma-separated element of the header (``override_element``): nginx before 1.23 reads
only the first of repeated headers and later versions join them with ", ", and no nginx config can see a second
header line on 1.22, so refusing repeated headers cannot be done there. The first element of the first line is
what every plane and nginx version reads alike (the mitmproxy plane joins repeats like nginx >= 1.23); a token
never holds a comma. A second header thus never changes the decision of the first.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable
from datetime import UTC, datetime

from strangler_proxy.spec import SAFE_METHODS

_CONTEXT = "strangler-override:v1"
METHOD_CLASSES = ("safe", "any")
MAX_LIFETIME_HOURS = 12
# How far ahead of a render the nginx plane knows tokens: those minted up to RENDER_WINDOW - MAX_LIFETIME hours
# after it still work there; later ones need `strangler-proxy nginx-reload`.
RENDER_WINDOW_HOURS = 24
_HOUR = 3600


def _expiry_text(hour_start: int) -> str:
    return datetime.fromtimestamp(hour_start, UTC).strftime("%Y%m%d%H")


def _expiry_seconds(text: str) -> int | None:
    if len(text) != 10 or not text.isdigit():
        return None
    try:
        return int(datetime.strptime(text, "%Y%m%d%H").replace(tzinfo=UTC).timestamp())
    except ValueError:
        return None


def _signed(secret: str, upstream: str, methods: str, expiry: str) -> str:
    message = f"{_CONTEXT}|{upstream}|{methods}|{expiry}".encode()
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return f"v1.{upstream}.{methods}.{expiry}.{digest}"


def override_token(secret: str, upstream: str, *, methods: str = "any", ttl: float = 3600,
                   now: float | None = None) -> str:
    """A token for ``upstream``, valid for ``methods`` until the first hour boundary at least ``ttl`` seconds on."""
    if methods not in METHOD_CLASSES:
        raise ValueError(f"methods must be one of {', '.join(METHOD_CLASSES)}")
    now = time.time() if now is None else now
    expiry = -(-int(now + ttl) // _HOUR) * _HOUR
    if ttl <= 0 or expiry - now > MAX_LIFETIME_HOURS * _HOUR:
        raise ValueError(f"ttl must be more than 0 and end within {MAX_LIFETIME_HOURS} hours")
    return _signed(secret, upstream, methods, _expiry_text(expiry))


def override_element(value: str | None) -> str | None:
    """The part of an override header value that is read as the token: up to its first comma."""
    return value.split(",", 1)[0] if value else value


def verify_override(secret: str | None, value: str | None, upstreams: Iterable[str], *, method: str,
                    now: float | None = None) -> str | None:
    """The upstream a valid, unexpired token for ``method`` names, else None (``value``: the header, repeats joined)."""
    value = override_element(value)
    if not secret or not value:
        return None
    parts = value.split(".")
    if len(parts) != 5 or parts[0] != "v1":
        return None
    _, upstream, methods, expiry, _ = parts
    if upstream not in set(upstreams) or methods not in METHOD_CLASSES:
        return None
    if methods == "safe" and method not in SAFE_METHODS:
        return None
    expires = _expiry_seconds(expiry)
    now = time.time() if now is None else now
    if expires is None or not expires - MAX_LIFETIME_HOURS * _HOUR <= now < expires:
        return None
    # Compared as bytes: compare_digest raises TypeError on non-ASCII str, and a header may hold any bytes.
    given = value.encode("utf-8", "surrogateescape")
    if hmac.compare_digest(_signed(secret, upstream, methods, expiry).encode(), given):
        return upstream
    return None


def nginx_token_maps(secret: str, upstreams: Iterable[str], *, now: float | None = None
                     ) -> tuple[dict[str, tuple[str, str, str]], list[tuple[str, str]]]:
    """What the nginx plane needs to verify tokens without an HMAC: every token whose expiry falls in the render
    window (token -> (upstream, methods, expiry)), and the (expiry, current local hour as nginx's $time_iso8601
    starts) pairs in which a token is valid: from MAX_LIFETIME_HOURS before its expiry up to it."""
    now = time.time() if now is None else now
    first = int(now) // _HOUR * _HOUR
    expiries = [first + _HOUR * k for k in range(1, RENDER_WINDOW_HOURS + 1)]
    tokens = {}
    for upstream in upstreams:
        for methods in METHOD_CLASSES:
            for expiry in expiries:
                text = _expiry_text(expiry)
                tokens[_signed(secret, upstream, methods, text)] = (upstream, methods, text)
    pairs = []
    for expiry in expiries:
        for hour in range(max(first, expiry - MAX_LIFETIME_HOURS * _HOUR), expiry, _HOUR):
            local = datetime.fromtimestamp(hour).astimezone()  # nginx's $time_iso8601 is local time
            pairs.append((_expiry_text(expiry), local.strftime("%Y-%m-%dT%H") + local.strftime("%z")))
    return tokens, pairs
