"""Reviews JSON API: list by product, create (auth, 409 duplicate, 400 bounds), owner/staff writes, rating summary."""

from __future__ import annotations

import pytest

from monolith.reviews.models import Review
from tests.monolith.catalog.factories import make_product

pytestmark = pytest.mark.django_db

REVIEW_FIELDS = {"id", "product", "user", "username", "rating", "title", "body", "created_at", "updated_at"}


def error_code(response) -> str:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    return body["error"]["code"]


def test_create_list_and_rating(api, alice_api, bob_api, product):
    created = alice_api.post("/api/reviews/", {"product": product.id, "rating": 5, "title": "Great"}, format="json")
    assert created.status_code == 201, created.content
    assert set(created.json()) == REVIEW_FIELDS
    assert created.json()["username"] == "alice"
    assert bob_api.post("/api/reviews/", {"product": product.id, "rating": 4}, format="json").status_code == 201
    other = make_product()
    alice_api.post("/api/reviews/", {"product": other.id, "rating": 1}, format="json")

    listed = api.get("/api/reviews/", {"product": product.id}).json()
    assert set(listed) == {"count", "next", "previous", "results"}
    assert [r["username"] for r in listed["results"]] == ["bob", "alice"]
    assert api.get("/api/reviews/").json()["count"] == 3

    assert api.get(f"/api/products/{product.id}/rating/").json() == {"product": product.id, "average": "4.50",
                                                                     "count": 2}  # fmt: skip
    assert api.get(f"/api/products/{make_product().id}/rating/").json()["average"] is None
    missing = api.get("/api/products/987654/rating/")
    assert (missing.status_code, error_code(missing)) == (404, "not_found")


def test_duplicate_review_is_409(alice_api, product):
    assert alice_api.post("/api/reviews/", {"product": product.id, "rating": 5}, format="json").status_code == 201
    again = alice_api.post("/api/reviews/", {"product": product.id, "rating": 3}, format="json")
    assert (again.status_code, error_code(again)) == (409, "conflict")
    assert Review.objects.count() == 1


@pytest.mark.parametrize("rating", [0, 6, "five", None])
def test_rating_out_of_bounds_is_400(alice_api, product, rating):
    response = alice_api.post("/api/reviews/", {"product": product.id, "rating": rating}, format="json")
    assert (response.status_code, error_code(response)) == (400, "invalid")
    assert "rating" in response.json()["error"]["details"]


def test_bad_input_is_400_and_an_unknown_product_404(api, alice_api, product):
    unknown = alice_api.post("/api/reviews/", {"product": 424242, "rating": 3}, format="json")
    assert (unknown.status_code, error_code(unknown)) == (404, "not_found")
    assert error_code(api.get("/api/reviews/", {"product": "abc"})) == "invalid"
    broken = alice_api.generic("POST", "/api/reviews/", "{not json", content_type="application/json")
    assert (broken.status_code, error_code(broken)) == (400, "malformed_request")


def test_anonymous_cannot_post(api, product):
    response = api.post("/api/reviews/", {"product": product.id, "rating": 5}, format="json")
    assert response.status_code == 403
    assert not Review.objects.exists()


def test_only_author_or_staff_change_a_review(api, alice_api, bob_api, staff_api, product):
    review_id = alice_api.post("/api/reviews/", {"product": product.id, "rating": 2}, format="json").json()["id"]
    url = f"/api/reviews/{review_id}/"
    assert api.get(url).json()["rating"] == 2
    denied = bob_api.patch(url, {"rating": 1}, format="json")
    assert (denied.status_code, error_code(denied)) == (403, "permission_denied")
    assert bob_api.delete(url).status_code == 403
    assert api.patch(url, {"rating": 1}, format="json").status_code == 403

    patched = alice_api.patch(url, {"rating": 3, "body": "Better after a week"}, format="json")
    assert (patched.status_code, patched.json()["rating"], patched.json()["body"]) == (200, 3, "Better after a week")
    assert alice_api.patch(url, {"rating": 7}, format="json").status_code == 400
    assert staff_api.patch(url, {"title": "Moderated"}, format="json").json()["title"] == "Moderated"
    assert staff_api.delete(url).status_code == 204
    assert api.get(url).status_code == 404
