"""API paths answer errors as JSON in every mode, HTML pages keep HTML."""

import pytest
from django.test import override_settings


@pytest.mark.django_db
@override_settings(DEBUG=True)
def test_unknown_api_path_is_json_even_in_debug(client):
    response = client.get("/api/no-such-thing/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": {"code": "not_found", "message": "Not found.", "details": {}}}
    assert response["X-Request-ID"]


@pytest.mark.django_db
@override_settings(DEBUG=True)
def test_unknown_page_stays_html_in_debug(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.django_db
def test_domain_json_errors_pass_through_untouched(client):
    response = client.get("/api/products/?min_price=abc")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
