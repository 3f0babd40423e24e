"""Bad input on the reviews service's API is a 4xx JSON error (issue 11's reproductions, each a 500 before)."""

from __future__ import annotations

import pytest

from tests.bad_input import DEEP_JSON, DEEP_OBJECT, HUGE, INVALID_UTF8, assert_json_error
from tests.extracted.reviews.conftest import ALICE, client_for

pytestmark = pytest.mark.django_db


def test_huge_id_in_query_is_400(shelf):
    error = assert_json_error(client_for(None).get(f"/api/reviews/?product={HUGE}"), 400, "invalid")
    assert "product" in error["details"]


@pytest.mark.parametrize("path", [f"/api/reviews/{HUGE}/", f"/api/products/{HUGE}/rating/"])
def test_huge_ids_in_paths_are_404(shelf, path):
    assert_json_error(client_for(None).get(path), 404, "not_found")


def test_huge_product_in_body_is_400(shelf, reviews_owned):
    response = client_for(ALICE).post("/api/reviews/", {"product": int(HUGE), "rating": 3}, format="json")
    assert "product" in assert_json_error(response, 400, "invalid")["details"]


@pytest.mark.parametrize("body", [DEEP_JSON, DEEP_OBJECT, INVALID_UTF8], ids=["5000-deep", "100-deep", "utf8"])
def test_malformed_json_is_400(shelf, reviews_owned, body):
    response = client_for(ALICE).post("/api/reviews/", body, content_type="application/json")
    assert_json_error(response, 400, "malformed_request")
