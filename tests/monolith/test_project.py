"""Project-level behaviour of the monolith: ops endpoints, request ids, the OpenAPI schema, JSON 404s under /api/."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import OperationalError, connection
from drf_spectacular.validation import validate_schema

pytestmark = pytest.mark.django_db


def test_healthz(client):
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_checks_the_database(client, monkeypatch):
    response = client.get("/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ready"})

    def unreachable(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", unreachable)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert "connection refused" in response.json()["databases"]["default"]


def test_metrics_are_prometheus_text_labelled_by_route(client):
    client.get("/api/products/")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert "# TYPE django_http_requests_total counter" in text
    assert re.search(
        r'django_http_requests_total\{method="GET",project="monolith",route="api/products/",status="200"\} \d',
        text,
    )
    assert "django_http_request_duration_seconds_bucket" in text


def test_request_id_is_echoed_when_sane(client):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="req-123_abc.DEF")
    assert response["X-Request-ID"] == "req-123_abc.DEF"


@pytest.mark.parametrize("sent", [None, "", "has spaces", "new\nline", "x" * 129, "<script>"])
def test_request_id_is_generated_when_absent_or_junk(client, sent):
    headers = {} if sent is None else {"HTTP_X_REQUEST_ID": sent}
    response = client.get("/healthz", **headers)
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])
    assert client.get("/healthz", **headers)["X-Request-ID"] != response["X-Request-ID"]


def test_openapi_schema_is_valid_and_lists_catalog_and_review_paths(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    validate_schema(schema)  # raises on an invalid OpenAPI 3 document
    paths = schema["paths"]
    for path, methods in {
        "/api/products/": {"get", "post"},
        "/api/products/{product_id}/": {"get", "put", "patch", "delete"},
        "/api/categories/": {"get", "post"},
        "/api/categories/{category_id}/": {"get", "put", "patch", "delete"},
        "/api/reviews/": {"get", "post"},
        "/api/reviews/{review_id}/": {"get", "patch", "delete"},
        "/api/products/{product_id}/rating/": {"get"},
    }.items():
        assert methods <= set(paths[path]), path
    list_params = {p["name"] for p in paths["/api/products/"]["get"]["parameters"]}
    assert {"category", "min_price", "max_price", "q", "ordering", "page", "page_size"} <= list_params
    product = schema["components"]["schemas"]["ProductOutput"]["properties"]
    assert {"id", "sku", "slug", "price", "images", "category", "category_slug"} <= set(product)
    assert product["price"]["type"] == "string"
    paginated = paths["/api/products/"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert paginated["$ref"].endswith("PaginatedProductOutputList")


def test_unknown_api_path_is_json_404(client):
    response = client.get("/api/no-such-thing/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": {"code": "not_found", "message": "Not found.", "details": {}}}


def test_unknown_page_is_html_404(client):
    response = client.get("/no-such-page/at/all/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_models_and_migrations_agree():
    out = StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    except SystemExit as exc:  # --check exits non-zero when a migration is missing
        pytest.fail(f"a model change has no migration (exit {exc.code}):\n{out.getvalue()}")
