"""Bad input on the inventory service's API is a 4xx JSON error (issue 11's reproductions, each a 500 before)."""

from __future__ import annotations

import pytest

from tests.bad_input import DEEP_JSON, DEEP_OBJECT, HUGE, assert_json_error

pytestmark = pytest.mark.django_db


def test_huge_id_in_path_is_404(api, shelf):
    assert_json_error(api.get(f"/api/stock/{HUGE}/"), 404, "not_found")


@pytest.mark.parametrize("query", [f"product={HUGE}", f"product=1,{HUGE}", "product=-1"])
def test_huge_or_bad_ids_in_query_are_400(api, shelf, query):
    error = assert_json_error(api.get(f"/api/stock/?{query}"), 400, "invalid")
    assert "product" in error["details"]


def test_huge_numbers_in_bodies_are_400(token_api, shelf, stock_owned):
    assert_json_error(token_api.put("/api/stock/1/", {"quantity_on_hand": int(HUGE)}, format="json"), 400)
    for line in ({"product": int(HUGE), "quantity": 1}, {"product": 1, "quantity": int(HUGE)}):
        body = {"reference": "bad-1", "lines": [line]}
        assert_json_error(token_api.post("/api/reservations/", body, format="json"), 400, "invalid")


@pytest.mark.parametrize("body", [DEEP_JSON, DEEP_OBJECT], ids=["5000-deep", "100-deep"])
def test_deeply_nested_json_is_400(token_api, shelf, stock_owned, body):
    response = token_api.post("/api/reservations/", body, content_type="application/json")
    assert_json_error(response, 400, "malformed_request")
