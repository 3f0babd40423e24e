"""Proxy spans (mitmproxy plane): one OpenTelemetry span per request while tracing is on (servicekit.tracing).

Composed after StranglerAddon in addon.py's list. ``requestheaders`` (every addon's runs before any ``request``
hook, where StranglerAddon routes) starts the span as a child of the client's valid ``traceparent``, or as a new
trace, and puts the span's own ``traceparent`` on the request, which StranglerAddon then passes on as it is: the
monolith's or the service's request span is the proxy span's child. ``response`` (after StranglerAddon's, so
the answer is final) and ``error`` end it with the status and the upstream that answered.

Tracing is on when the OTEL_* environment asks for it (servicekit.tracing), as in the Django projects; the
service name is ``strangler-proxy`` unless ``OTEL_SERVICE_NAME`` says otherwise. Off, each hook is one check.
The nginx plane records no span (Debian's nginx has no OpenTelemetry module): it passes a valid ``traceparent``
on and starts one otherwise (strangler_proxy/nginx/render.py), so its traces begin at the upstream's span.
"""

from __future__ import annotations

from mitmproxy import http

from servicekit.trace_context import HEADER, traceparent_parse
from servicekit.tracing import span_failed, span_start, span_trace_context, tracing_on, tracing_setup
from strangler_proxy.responses import UPSTREAM_HEADER  # set by StranglerAddon's response hook (route_headers)

SERVICE_NAME = "strangler-proxy"
SPAN_KEY = "strangler_trace_span"
_MAX_PATH = 300


class ProxyTracing:
    def load(self, loader) -> None:
        tracing_setup(service_name=SERVICE_NAME)  # the environment decides; a test may have turned it on already

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if not tracing_on():
            return
        request = flow.request
        method = request.data.method.decode("ascii", "replace")[:20]
        path = request.data.path.decode("utf-8", "replace").split("?", 1)[0][:_MAX_PATH]  # never the query
        span = span_start(name=f"proxy {method}", parent=traceparent_parse(request.headers.get(HEADER)),
                          kind="server", attributes={"http.request.method": method, "url.path": path})
        flow.metadata[SPAN_KEY] = span
        request.headers[HEADER] = span_trace_context(span).traceparent

    def response(self, flow: http.HTTPFlow) -> None:
        span = flow.metadata.pop(SPAN_KEY, None)
        if span is None:
            return
        response = flow.response
        if response is not None:
            span.set_attribute("http.response.status_code", response.status_code)
            upstream = response.headers.get(UPSTREAM_HEADER)
            if upstream:
                span.set_attribute("strangler.upstream", upstream)
            if response.status_code >= 500:
                span_failed(span, f"HTTP {response.status_code}")
        span.end()

    def error(self, flow: http.HTTPFlow) -> None:
        span = flow.metadata.pop(SPAN_KEY, None)
        if span is None:
            return
        span_failed(span, flow.error.msg if flow.error else "error")
        span.end()
