"""Prometheus request counters and latency histograms, labelled by the resolved URL route (not raw path)."""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "django_http_requests_total", "HTTP requests served", ["project", "method", "route", "status"]
)
LATENCY = Histogram(
    "django_http_request_duration_seconds",
    "HTTP request latency",
    ["project", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class RequestMetricsMiddleware:
    def __init__(self, get_response):
        from django.conf import settings

        self.get_response = get_response
        self.project = getattr(settings, "PROJECT_NAME", "django")

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = match.route if match is not None and match.route else "unmatched"
        LATENCY.labels(self.project, request.method, route).observe(time.perf_counter() - started)
        REQUESTS.labels(self.project, request.method, route, str(response.status_code)).inc()
        return response
