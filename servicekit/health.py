"""Liveness (/healthz), readiness (/readyz: every database answers) and Prometheus metrics (/metrics)."""

from __future__ import annotations

from django.db import connections
from django.http import HttpResponse, JsonResponse
from django.urls import path
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest


def healthz(request):
    return JsonResponse({"status": "ok"})


def readyz(request):
    failures = {}
    for alias in connections:
        try:
            with connections[alias].cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
        except Exception as exc:  # any driver error means not ready
            failures[alias] = f"{type(exc).__name__}: {exc}"
    if failures:
        return JsonResponse({"status": "unavailable", "databases": failures}, status=503)
    return JsonResponse({"status": "ready"})


def metrics(request):
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)


urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
]
