"""Ops surface of the catalog service: health, readiness, metrics, request ids, JSON 404s, sync checksums, schema."""

from __future__ import annotations

import pytest
from django.db import connections

from tests.verify_token import verify_headers

pytestmark = pytest.mark.django_db


def test_healthz_and_readyz(api):
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}


def test_readyz_is_503_when_the_database_is_unreachable(api, settings, monkeypatch):
    connection = connections["default"]

    def broken_cursor(*args, **kwargs):
        raise connection.Database.OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", broken_cursor)
    response = api.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert "connection refused" in response.json()["databases"]["default"]


def test_metrics_are_prometheus_text_labelled_with_the_project(api, catalog):
    api.get("/api/products/")
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert 'django_http_requests_total{method="GET",project="catalog",route="api/products/",status="200"}' in text


def test_request_id_is_echoed_when_sane_and_made_otherwise(api):
    assert api.get("/healthz", HTTP_X_REQUEST_ID="abc-123")["X-Request-ID"] == "abc-123"
    made = api.get("/healthz", HTTP_X_REQUEST_ID="bad\nvalue")["X-Request-ID"]
    assert made != "bad\nvalue" and len(made) == 32


def test_unknown_paths_are_json_404(api):
    response = api.get("/api/nothing-here/")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Not found.", "details": {}}}


def test_sync_checksums_cover_the_configured_aggregates(api, catalog):
    api.credentials(HTTP_AUTHORIZATION=verify_headers()["Authorization"])
    stats = api.get("/sync/checksums/product/").json()
    assert (stats["count"], stats["min_id"], stats["max_id"]) == (5, 1, 5)
    buckets = api.get("/sync/checksums/product/?buckets=2").json()["buckets"]
    assert sum(b["count"] for b in buckets) == 5
    rows = api.get("/sync/checksums/category/?start=1&end=100").json()["rows"]
    assert set(rows) == {"10", "11", "20"}


def test_openapi_schema_lists_the_taken_over_paths(api):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = set(response.json()["paths"])
    assert {"/api/products/", "/api/products/{product_id}/"} <= paths
    assert {"/api/categories/", "/api/categories/{category_id}/"} <= paths
    assert all(path.startswith("/api/") for path in paths)  # ops and sync endpoints are not public API
