"""Bad input on the catalog service's API is a 4xx JSON error (issue 11's reproductions, each a 500 before)."""

from __future__ import annotations

import pytest

from tests.bad_input import DEEP_JSON, DEEP_OBJECT, HUGE, assert_json_error

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", [f"/api/products/{HUGE}/", f"/api/categories/{HUGE}/"])
def test_huge_ids_in_paths_are_404(api, catalog, path):
    assert_json_error(api.get(path), 404, "not_found")


def test_huge_ids_in_bodies_are_400(token_api, catalog, catalog_owned):
    body = {"sku": "HUGE-1", "name": "x", "price": "1.00", "category": int(HUGE)}
    product = assert_json_error(token_api.post("/api/products/", body, format="json"), 400, "invalid")
    assert "category" in product["details"]
    category = token_api.post("/api/categories/", {"name": "x", "parent": int(HUGE)}, format="json")
    assert "parent" in assert_json_error(category, 400, "invalid")["details"]


@pytest.mark.parametrize("body", [DEEP_JSON, DEEP_OBJECT], ids=["5000-deep", "100-deep"])
def test_deeply_nested_json_is_400(token_api, catalog, catalog_owned, body):
    response = token_api.post("/api/products/", body, content_type="application/json")
    assert_json_error(response, 400, "malformed_request")
