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

The same cached lookup (``IdentityResolver``) signs shadow copies on both planes: the mitmproxy plane's shadow jobs
on its event loop, the nginx plane's diff endpoint from its threads. A copy whose identity cannot be had is not
sent (a shadow error, ``identity_unavailable``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING
from urllib.parse import quote

from mitmproxy import ctx, http

from strangler_proxy.fetch import AsyncUpstreamClient, UpstreamClient, UpstreamError
from strangler_proxy.header_fields import field_bytes, field_text, fields_rewritten, folded_value
from strangler_proxy.spec import IdentitySettings, RouteTable

if TYPE_CHECKING:
    from strangler_proxy.shadow import ShadowJob

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
    """Bounded TTL cache: key -> (token, deadline), least recently used dropped first.

    Locked: the nginx plane's diff endpoint looks identities up from its shadow threads (a lock nobody else holds
    costs well under a microsecond on mitmproxy's single event loop).
    """

    def __init__(self) -> None:
        self.entries: OrderedDict[bytes, tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: bytes, now: float) -> str | None:
        with self._lock:
            entry = self.entries.get(key)
            if entry is None:
                return None
            if entry[1] <= now:
                del self.entries[key]
                return None
            self.entries.move_to_end(key)
            return entry[0]

    def put(self, key: bytes, token: str, deadline: float, size: int) -> None:
        with self._lock:
            self.entries[key] = (token, deadline)
            self.entries.move_to_end(key)
            while len(self.entries) > size:
                self.entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self.entries.clear()


class IdentityUnavailable(UpstreamError):
    """The identity endpoint did not say who the credentials are: the request must not be forwarded.

    An UpstreamError (reason ``identity_unavailable``), so a shadow copy that cannot get its identity is counted
    as a failed shadow request, never sent without it."""

    def __init__(self, message: str):
        super().__init__("identity_unavailable", message)


class IdentityResolver:
    """The cached lookup of signed identities, for client requests (``IdentityAddon``) and shadow copies of both
    planes (``shadow.ShadowRunner``): the same credentials get the same identity for the same upstream."""

    def __init__(self) -> None:
        self.cache = IdentityCache()
        self.client = AsyncUpstreamClient()
        self.cache_enabled = True
        self.lookups = {"hit": 0, "miss": 0, "anonymous": 0, "unavailable": 0}

    async def token(self, *, settings: IdentitySettings, monolith_url: str, upstream: str, fields,
                    host: str | None) -> str | None:
        """The signed identity for a request with these header ``fields`` (raw bytes pairs) going to ``upstream``;
        None when it gets none (not an identity upstream, or no credentials). Raises IdentityUnavailable."""
        key, token = self._cached(settings, upstream, fields)
        if key is None or token is not None:
            return token
        try:
            fetched = await self.client.fetch(**_lookup_request(settings, monolith_url, upstream, fields, host))
        except UpstreamError as exc:
            raise self._unavailable(f"identity endpoint: {exc}") from exc
        return self._keep(settings, key, fetched)

    def token_blocking(self, *, settings: IdentitySettings, monolith_url: str, upstream: str, fields,
                       host: str | None, client: UpstreamClient) -> str | None:
        """``token`` from a thread, with that thread's blocking client (the diff endpoint's shadow threads)."""
        key, token = self._cached(settings, upstream, fields)
        if key is None or token is not None:
            return token
        try:
            fetched = client.fetch(**_lookup_request(settings, monolith_url, upstream, fields, host))
        except UpstreamError as exc:
            raise self._unavailable(f"identity endpoint: {exc}") from exc
        return self._keep(settings, key, fetched)

    async def copy_headers(self, job: ShadowJob, upstream: str) -> tuple[tuple[str, str], ...]:
        """The identity header of a shadow copy to ``upstream``: the one a client request to it would carry, so
        both sides of a diff answer the same caller. Raises IdentityUnavailable (the copy is then not sent)."""
        lookup = _copy_lookup(job, upstream)
        token = await self.token(**lookup) if lookup else None
        return ((job.identity.header, token),) if token else ()

    def copy_headers_blocking(self, job: ShadowJob, upstream: str, *,
                              client: UpstreamClient) -> tuple[tuple[str, str], ...]:
        """``copy_headers`` from a shadow thread, with its blocking client."""
        lookup = _copy_lookup(job, upstream)
        token = self.token_blocking(**lookup, client=client) if lookup else None
        return ((job.identity.header, token),) if token else ()

    def _cached(self, settings: IdentitySettings, upstream: str, fields) -> tuple[bytes | None, str | None]:
        """(cache key, cached token); (None, None) when nothing is to be looked up."""
        if not settings.wanted(upstream):
            return None, None
        credentials = credentials_of(fields, settings)
        if credentials is None:
            self.lookups["anonymous"] += 1
            return None, None
        key = hashlib.sha256(upstream.encode() + b"\0" + credentials).digest()
        token = self.cache.get(key, time.time()) if self.cache_enabled and settings.cache_ttl > 0 else None
        self.lookups["hit" if token is not None else "miss"] += 1
        return key, token

    def _keep(self, settings: IdentitySettings, key: bytes, fetched) -> str:
        token = fetched.header(settings.header)
        if fetched.status != 200 or not token:
            raise self._unavailable(f"identity endpoint answered {fetched.status}"
                                    + ("" if token else " without an identity"))
        if self.cache_enabled and settings.cache_ttl > 0:
            now = time.time()
            expiry = token_expiry(token)
            deadline = now + settings.cache_ttl
            if expiry is not None:
                deadline = min(deadline, expiry - EXPIRY_MARGIN)
            if deadline > now:
                self.cache.put(key, token, deadline, settings.cache_size)
        return token

    def _unavailable(self, message: str) -> IdentityUnavailable:
        self.lookups["unavailable"] += 1
        return IdentityUnavailable(message)


def shadow_identity(table: RouteTable) -> IdentitySettings | None:
    """A ShadowJob's ``identity``: the table's settings when some upstream gets identity."""
    return table.settings.identity if table.settings.identity.upstreams else None


def _copy_lookup(job: ShadowJob, upstream: str) -> dict | None:
    """``token`` keywords for a shadow copy to ``upstream``; None when that upstream gets no identity."""
    settings = job.identity
    if settings is None or not settings.wanted(upstream):
        return None
    fields = tuple((field_bytes(name), field_bytes(value)) for name, value in job.headers)
    return {"settings": settings, "monolith_url": job.upstream_urls[job.monolith], "upstream": upstream,
            "fields": fields, "host": job.host}


def _lookup_request(settings: IdentitySettings, monolith_url: str, upstream: str, fields, host: str | None) -> dict:
    """The identity endpoint request (``fetch`` keywords) for a request with these header fields."""
    headers = [("Accept", "application/json")]
    for name in (b"authorization", b"x-request-id", b"traceparent"):
        value = folded_value(fields, name)
        if value is not None:
            headers.append((field_text(name), value))
    cookies = [field_text(value) for name, value in fields if name.lower() == b"cookie"]
    if cookies:
        headers.append(("Cookie", "; ".join(cookies)))  # one field, as HTTP/1.1 wants (RFC 9113 8.2.3)
    return {"base_url": monolith_url, "method": "GET", "path": f"{settings.endpoint}?audience={quote(upstream)}",
            "headers": headers, "timeout": settings.timeout, "host_header": host or None}


class IdentityAddon(IdentityResolver):
    """Options of the identity lookup; ``StranglerAddon`` calls ``attach`` for service-bound requests."""

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
        token = await self.token(settings=settings, monolith_url=table.upstreams[table.monolith].url,
                                 upstream=upstream, fields=request.headers.fields, host=request.host_header)
        if token is not None:
            request.headers.fields = fields_rewritten(request.headers.fields, drop=frozenset(),
                                                      set_to=((settings.header, token),))
