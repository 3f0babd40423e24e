"""A write on the non-owner is a 409 JSON answer under any DRF exception handler and from plain Django views."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

from strangler_sync.ownership import ownership_set

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.strangler_sync.not_owner_urls")]

EXPECTED = {"code": "not_owner", "message": "monolith does not own product writes; catalog does",
            "details": {"aggregate": "product", "owner": "catalog", "project": "monolith"}}


@pytest.fixture
def flipped():
    ownership_set(aggregate_type="product", owner="catalog")


def _post(path: str):
    return Client(raise_request_exception=False).post(path, data={}, content_type="application/json")


@pytest.mark.parametrize("handler", ["servicekit.errors.api_exception_handler",
                                     "rest_framework.views.exception_handler"])
def test_drf_view_answers_409_json_under_any_exception_handler(settings, flipped, handler):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "EXCEPTION_HANDLER": handler}
    response = _post("/drf/")
    assert response.status_code == 409
    assert response.json() == {"error": EXPECTED}


def test_plain_view_answers_409_json_through_the_middleware(settings, flipped):
    response = _post("/plain/")
    assert response.status_code == 409 and response.json() == {"error": EXPECTED}
    middleware = [m for m in settings.MIDDLEWARE if m != "strangler_sync.middleware.NotOwnerMiddleware"]
    with override_settings(MIDDLEWARE=middleware):  # without it: Django's 500
        assert _post("/plain/").status_code == 500


def test_the_owner_writes(settings):
    assert _post("/drf/").json() == {"written": True}
    assert _post("/plain/").json() == {"written": True}
