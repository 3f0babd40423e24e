"""Answers the mitmproxy plane gives itself, and its own response headers."""

from __future__ import annotations

import copy
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


# A checked answer the service route's answers are copied from. http.Response() type-checks its ten fields in
# ResponseData.__post_init__ (mitmproxy's __debug__ check, which builds a TypeError per field even when it passes):
# measured the largest single cost of the addon on the service route, more than the route's whole request hook.
_TEMPLATE = http.Response(b"HTTP/1.1", 200, b"", http.Headers(), b"", None, 0.0, 0.0)


def response_from_fetched(fetched: HttpResponseData, *, head: bool) -> http.Response:
    """The mitmproxy answer for what the addon's client fetched: its headers less hop-by-hop ones, re-framed."""
    pairs = []
    for name, value in fetched.header_pairs:
        lowered = name.lower()
        if lowered not in HOP_BY_HOP and (head or lowered != "content-length"):
            pairs.append((name.encode("latin-1"), value.encode("latin-1")))
    body = fetched.body
    if type(fetched.status) is not int or type(body) is not bytes:  # what the skipped check would refuse
        raise TypeError(f"fetched answer of types {type(fetched.status).__name__}/{type(body).__name__}")
    if not head:
        pairs.append((b"Content-Length", str(len(body)).encode()))
    now = time.time()
    data = copy.copy(_TEMPLATE.data)  # a shallow copy of the checked fields; each one is replaced below
    data.status_code = fetched.status
    data.reason = (fetched.reason or "").encode("latin-1", "replace")
    data.headers = http.Headers(pairs)
    data.content = body
    data.timestamp_start = data.timestamp_end = now
    response = copy.copy(_TEMPLATE)
    response.data = data
    return response
