"""Identity at the edge, mitmproxy plane: resolve the caller once, forward a signed identity to the service.

For a request the routing sends to an upstream listed in the route file's ``settings.identity.upstreams``, the
credentials it carries (the Authorization header, the cookies listed in ``identity.cookies``) are sent to the
monolith's identity endpoint (``servicekit.identity.views``) with ``?audience=<upstream>``; its signed answer
goes to the service in ``identity.header``. A request without credentials is not looked up (the service sees
no identity: anonymous). Answers are cached per (upstream, SHA-256 of the credentials) for
``identity.cache_ttl`` seconds, never past the token's own expiry, at most ``identity.cache_size`` of them
(least recently used go first). The identity header a client sends is dropped on every route by the routing
addon (``StranglerAddon``), whether identity is configured or not.

Fail closed: when the endpoint does not answer 200 with an identity in time, the request is not forwarded
(503 ``identity_unavailable``; on a fallback route a safe method is served by the monolith, which checks the
credentials itself, as the nginx plane does).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections import OrderedDict
from urllib.parse import quote

from mitmproxy import ctx, http

from strangler_proxy.fetch import AsyncUpstreamClient, UpstreamError
from strangler_proxy.header_fields import field_text, fields_rewritten, folded_value
from strangler_proxy.spec import IdentitySettings, RouteTable

EXPIRY_MARGIN = 2.0  # seconds: a cached identity is dropped this long before the token itself expires


def credentials_of(fields, settings: IdentitySettings) -> bytes | None:
    """The credentials a request carries (Authorization, the credential cookies), canonical; None if none."""
    authorization = folded_value(fields, b"authorization")
    cookies = []
    if settings.cookies:
        wanted = set(settings.cookies)
        # field by field: HTTP/2 sends each cookie in a field of its own, which must not be joined with ", "
        for part in (p for name, value in fields if name.lower() == b"cookie" for p in field_text(value).split(";")):
            name, sep, value = part.strip().partition("=")
            if sep and name in wanted and value:
                cookies.append(f"{name}={value}")
    if not authorization and not cookies:
        return None
    return "\n".join([authorization or "", *sorted(cookies)]).encode("utf-8", "surrogateescape")


def token_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT, read without checking the signature (the monolith just signed it)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError, binascii.Error):
        return None


class IdentityCache:
    """Bounded TTL cache: key -> (token, deadline), least recently used dropped first."""

    def __init__(self) -> None:
        self.entries: OrderedDict[bytes, tuple[str, float]] = OrderedDict()

    def get(self, key: bytes, now: float) -> str | None:
        entry = self.entries.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            del self.entries[key]
            return None
        self.entries.move_to_end(key)
        return entry[0]

    def put(self, key: bytes, token: str, deadline: float, size: int) -> None:
        self.entries[key] = (token, deadline)
        self.entries.move_to_end(key)
        while len(self.entries) > size:
            self.entries.popitem(last=False)

    def clear(self) -> None:
        self.entries.clear()


class IdentityUnavailable(Exception):
    """The identity endpoint did not say who the credentials are: the request must not be forwarded."""


class IdentityAddon:
    """Options and state of the identity lookup; ``StranglerAddon`` calls ``attach`` for service-bound requests."""

    def __init__(self) -> None:
        self.cache = IdentityCache()
        self.client = AsyncUpstreamClient()
        self.cache_enabled = True
        self.lookups = {"hit": 0, "miss": 0, "anonymous": 0, "unavailable": 0}

    def load(self, loader) -> None:
        loader.add_option("strangler_identity_cache", bool, True,
                          "Reuse identity answers for the route file's settings.identity.cache_ttl; off: every "
                          "service-bound request with credentials asks the monolith.")

    def configure(self, updated: set[str]) -> None:
        if "strangler_identity_cache" in updated:
            self.cache_enabled = bool(ctx.options.strangler_identity_cache)
            self.cache.clear()

    async def attach(self, flow: http.HTTPFlow, table: RouteTable, upstream: str) -> None:
        """Set the signed identity header on a request going to ``upstream`` (if it gets identity and carries
        credentials). Raises IdentityUnavailable when the monolith cannot say."""
        settings = table.settings.identity
        if not settings.wanted(upstream):
            return
        request = flow.request
        credentials = credentials_of(request.headers.fields, settings)
        if credentials is None:
            self.lookups["anonymous"] += 1
            return
        key = hashlib.sha256(upstream.encode() + b"\0" + credentials).digest()
        now = time.time()
        use_cache = self.cache_enabled and settings.cache_ttl > 0
        token = self.cache.get(key, now) if use_cache else None
        if token is None:
            self.lookups["miss"] += 1
            token = await self._lookup(table, upstream, request)
            if use_cache:
                expiry = token_expiry(token)
                deadline = now + settings.cache_ttl
                if expiry is not None:
                    deadline = min(deadline, expiry - EXPIRY_MARGIN)
                if deadline > now:
                    self.cache.put(key, token, deadline, settings.cache_size)
        else:
            self.lookups["hit"] += 1
        request.headers.fields = fields_rewritten(request.headers.fields, drop=frozenset(),
                                                  set_to=((settings.header, token),))

    async def _lookup(self, table: RouteTable, upstream: str, request: http.Request) -> str:
        settings = table.settings.identity
        fields = request.headers.fields
        headers = [("Accept", "application/json")]
        for name in (b"authorization", b"x-request-id", b"traceparent"):
            value = folded_value(fields, name)
            if value is not None:
                headers.append((field_text(name), value))
        cookies = [field_text(value) for name, value in fields if name.lower() == b"cookie"]
        if cookies:
            headers.append(("Cookie", "; ".join(cookies)))  # one field, as HTTP/1.1 wants (RFC 9113 8.2.3)
        try:
            fetched = await self.client.fetch(
                base_url=table.upstreams[table.monolith].url, method="GET",
                path=f"{settings.endpoint}?audience={quote(upstream)}", headers=headers, timeout=settings.timeout,
                host_header=request.host_header or None,
            )
        except UpstreamError as exc:
            self.lookups["unavailable"] += 1
            raise IdentityUnavailable(f"identity endpoint: {exc}") from exc
        token = fetched.header(settings.header)
        if fetched.status != 200 or not token:
            self.lookups["unavailable"] += 1
            raise IdentityUnavailable(f"identity endpoint answered {fetched.status}"
                                      + ("" if token else " without an identity"))
        return token
