"""Answers the mitmproxy plane gives itself, and its own response headers."""

from __future__ import annotations

import json
import time

from mitmproxy import http

from strangler_proxy.diffing import HttpResponseData
from strangler_proxy.fetch import HOP_BY_HOP

REQUEST_ID_HEADER = "X-Request-ID"
ROUTE_HEADER = "X-Strangler-Route"
UPSTREAM_HEADER = "X-Strangler-Upstream"
FALLBACK_HEADER = "X-Strangler-Fallback"
PROXY_UPSTREAM = "proxy"  # X-Strangler-Upstream of answers the proxy gives itself


def error_response(status: int, code: str, message: str, details: dict | None = None) -> http.Response:
    """The project's one API error shape, ``{"error": {"code", "message", "details"}}``."""
    body = json.dumps({"error": {"code": code, "message": message, "details": details or {}}}).encode()
    response = http.Response.make(status, body, {"Content-Type": "application/json"})
    if not response.reason:
        response.reason = REASONS_MISSING.get(status, "")
    return response


REASONS_MISSING = {421: "Misdirected Request"}  # missing from mitmproxy's status table


def response_from_fetched(fetched: HttpResponseData, *, head: bool) -> http.Response:
    pairs = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in fetched.header_pairs
             if name.lower() not in HOP_BY_HOP and (head or name.lower() != "content-length")]
    if not head:
        pairs.append((b"Content-Length", str(len(fetched.body)).encode()))
    now = time.time()
    reason = (fetched.reason or "").encode("latin-1", "replace")
    return http.Response(b"HTTP/1.1", fetched.status, reason, http.Headers(pairs), fetched.body, None, now, now)
