"""Accounts JSON API: /api/me/ and /api/addresses/."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from monolith.accounts.models import Address
from tests.monolith.accounts.conftest import ADDRESS

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(shopper):
    client = APIClient()
    client.force_authenticate(shopper)
    return client


def test_me(api, shopper):
    assert api.get("/api/me/").json() == {"id": shopper.id, "username": "shopper", "email": "s@example.com",
                                          "is_staff": False}


def test_anonymous_is_refused(db):
    for url in ("/api/me/", "/api/addresses/"):
        response = APIClient().get(url)
        assert response.status_code in (401, 403)
        assert response.json()["error"]["code"] in ("not_authenticated", "permission_denied")


def test_create_and_list_addresses(api):
    created = api.post("/api/addresses/", ADDRESS, format="json")
    assert created.status_code == 201
    assert created.json()["is_default"] is True and created.json()["line2"] == ""
    listed = api.get("/api/addresses/").json()["results"]
    assert [a["id"] for a in listed] == [created.json()["id"]]


def test_invalid_address_is_400_with_field_details(api):
    response = api.post("/api/addresses/", {**ADDRESS, "country": "G1"}, format="json")
    assert response.status_code == 400
    assert "country" in response.json()["error"]["details"]
    missing = api.post("/api/addresses/", {"name": "x"}, format="json")
    assert missing.status_code == 400 and "line1" in missing.json()["error"]["details"]
    assert not Address.objects.exists()
