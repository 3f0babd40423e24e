"""Bad input on the monolith's API is a 4xx JSON error (issue 11's reproductions, each a 500 before)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.bad_input import DEEP_JSON, DEEP_OBJECT, HUGE, INVALID_UTF8, assert_json_error
from tests.monolith.catalog.factories import make_product

pytestmark = pytest.mark.django_db


@pytest.fixture
def shopper_api(django_user_model):
    client = APIClient()
    client.force_authenticate(django_user_model.objects.create_user(username="bad-input-shopper"))
    return client


@pytest.fixture
def staff_api(django_user_model):
    client = APIClient()
    client.force_authenticate(django_user_model.objects.create_user(username="bad-input-staff", is_staff=True))
    return client


@pytest.mark.parametrize("path", [
    f"/api/stock/{HUGE}/", f"/api/products/{HUGE}/", f"/api/categories/{HUGE}/", f"/api/reviews/{HUGE}/",
    f"/api/products/{HUGE}/rating/",
])
def test_huge_ids_in_paths_are_404(path):
    assert_json_error(APIClient().get(path), 404, "not_found")


def test_huge_cart_item_is_404():
    visitor = APIClient()  # with a cart, so the id reaches the cart's lines
    assert visitor.post("/api/cart/items/", {"product": make_product("W", price="1.00", stock=3).id},
                        format="json").status_code == 201
    assert_json_error(visitor.patch(f"/api/cart/items/{HUGE}/", {"quantity": 1}, format="json"), 404)
    assert_json_error(visitor.delete(f"/api/cart/items/{HUGE}/"), 404)


def test_huge_review_page_is_404(client):
    assert client.get(f"/reviews/{HUGE}/edit/").status_code == 404


@pytest.mark.parametrize("query", [f"product={HUGE}", f"product=1,{HUGE}", "product=-1", "product=abc"])
def test_huge_or_bad_ids_in_stock_query_are_400(query):
    error = assert_json_error(APIClient().get(f"/api/stock/?{query}"), 400, "invalid")
    assert "product" in error["details"]


def test_huge_id_in_reviews_query_is_400():
    error = assert_json_error(APIClient().get(f"/api/reviews/?product={HUGE}"), 400, "invalid")
    assert "product" in error["details"]


def test_huge_ids_in_bodies_are_400(shopper_api, staff_api):
    product = make_product("Widget", price="3.00", stock=5)
    assert_json_error(APIClient().post("/api/cart/items/", {"product": int(HUGE)}, format="json"), 400)
    review = shopper_api.post("/api/reviews/", {"product": int(HUGE), "rating": 3}, format="json")
    assert "product" in assert_json_error(review, 400, "invalid")["details"]
    category = staff_api.post("/api/categories/", {"name": "x", "parent": int(HUGE)}, format="json")
    assert "parent" in assert_json_error(category, 400, "invalid")["details"]
    assert_json_error(staff_api.post("/api/reservations/", {
        "reference": "r1", "lines": [{"product": int(HUGE), "quantity": 1}]}, format="json"), 400)
    assert_json_error(staff_api.post("/api/reservations/", {
        "reference": "r1", "lines": [{"product": product.id, "quantity": int(HUGE)}]}, format="json"), 400)
    assert_json_error(staff_api.put(f"/api/stock/{product.id}/", {"quantity_on_hand": int(HUGE)}, format="json"), 400)
    assert_json_error(staff_api.put(f"/api/stock/{product.id}/", {"quantity_on_hand": 2**31}, format="json"), 400)
    assert_json_error(shopper_api.post("/api/orders/", {
        "address": int(HUGE), "card_number": "4242424242424242", "idempotency_key": "k1"}, format="json"), 400)


@pytest.mark.parametrize("body", [{"product": "1" * 5000}, {"product": 1, "quantity": "1" * 5000},
                                  {"product": HUGE}, {"product": 1, "quantity": HUGE}])
def test_long_digit_strings_in_the_cart_are_400(body):
    # int() refuses strings past 4,300 digits (ValueError, a 500); shorter ones past a bigint overflowed the query
    make_product("Widget", price="3.00", stock=5)
    assert_json_error(APIClient().post("/api/cart/items/", body, format="json"), 400, "invalid")


@pytest.mark.parametrize("body", [DEEP_JSON, DEEP_OBJECT], ids=["5000-deep", "100-deep"])
@pytest.mark.parametrize("path", ["/api/addresses/", "/api/reviews/", "/api/cart/items/", "/api/orders/"])
def test_deeply_nested_json_is_400(shopper_api, path, body):
    response = shopper_api.post(path, body, content_type="application/json")
    assert_json_error(response, 400, "malformed_request")


def test_invalid_utf8_is_400(shopper_api):
    response = shopper_api.post("/api/reviews/", INVALID_UTF8, content_type="application/json")
    assert_json_error(response, 400, "malformed_request")


def test_wrong_content_type_is_415(shopper_api):
    response = shopper_api.post("/api/addresses/", b"<address/>", content_type="application/xml")
    assert_json_error(response, 415, "unsupported_media_type")


def test_nesting_within_the_limit_still_parses(shopper_api):
    # a real body (an inline shipping address) is two levels deep: far inside the limit
    response = shopper_api.post("/api/orders/", {"shipping_address": {"name": ["x"]}, "card_number": "4"},
                                format="json")
    assert_json_error(response, 400, "invalid")


@pytest.mark.parametrize("product_id", ["1" * 5000, "9" * 19, HUGE, "١٢"])
def test_cart_page_forms_take_only_ids(client, product_id):
    make_product("Widget", price="3.00", stock=5)
    client.post("/cart/add/", {"product_id": "1"})  # a cart, so the id reaches its lines
    response = client.post("/cart/update/", {"product_id": product_id, "quantity": "2"})
    assert response.status_code == 302
