"""Cart JSON API: anonymous session carts, add/update/remove, error shape for every bad input."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from monolith.cart.models import Cart, CartLine

pytestmark = pytest.mark.django_db


def test_empty_cart_without_creating_one(products):
    response = APIClient().get("/api/cart/")
    assert response.status_code == 200
    assert response.json() == {"lines": [], "item_count": 0, "subtotal": "0.00", "currency": "USD"}
    assert not Cart.objects.exists()


def test_anonymous_cart_lives_in_the_session(products):
    client = APIClient()
    added = client.post("/api/cart/items/", {"product": products["mug"].id, "quantity": 2}, format="json")
    assert added.status_code == 201
    assert added.json()["subtotal"] == "17.00"
    line = added.json()["lines"][0]
    assert (line["product"], line["quantity"], line["unit_price"], line["name"]) == (
        products["mug"].id, 2, "8.50", "Mug",
    )
    assert client.get("/api/cart/").json()["item_count"] == 2
    assert APIClient().get("/api/cart/").json()["item_count"] == 0  # another visitor has another cart


def test_update_and_delete_lines(products):
    client = APIClient()
    client.post("/api/cart/items/", {"product": products["mug"].id}, format="json")
    url = f"/api/cart/items/{products['mug'].id}/"
    patched = client.patch(url, {"quantity": 4}, format="json")
    assert patched.status_code == 200 and patched.json()["item_count"] == 4
    deleted = client.delete(url)
    assert deleted.status_code == 200 and deleted.json()["lines"] == []
    assert client.delete(url).status_code == 404


@pytest.mark.parametrize("quantity", [0, -3, 100, 1.5, "abc", None])
def test_invalid_quantities_are_400(products, quantity):
    client = APIClient()
    response = client.post("/api/cart/items/", {"product": products["mug"].id, "quantity": quantity}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert not CartLine.objects.exists()


def test_patch_with_invalid_quantity_is_400_and_keeps_the_line(products):
    client = APIClient()
    client.post("/api/cart/items/", {"product": products["mug"].id, "quantity": 3}, format="json")
    response = client.patch(f"/api/cart/items/{products['mug'].id}/", {"quantity": 0}, format="json")
    assert response.status_code == 400
    assert CartLine.objects.get().quantity == 3


def test_unknown_product_is_404_and_inactive_is_400(products):
    client = APIClient()
    unknown = client.post("/api/cart/items/", {"product": 123456, "quantity": 1}, format="json")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    inactive = client.post("/api/cart/items/", {"product": products["gone"].id}, format="json")
    assert inactive.status_code == 409 and inactive.json()["error"]["code"] == "product_unavailable"
    junk = client.post("/api/cart/items/", {"product": "mug"}, format="json")
    assert junk.status_code == 400
    assert not CartLine.objects.exists()


def test_malformed_json_is_400(products):
    response = APIClient().post("/api/cart/items/", data='{"product": ', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"


def test_patch_on_a_visitor_without_cart_is_404(products):
    response = APIClient().patch(f"/api/cart/items/{products['mug'].id}/", {"quantity": 1}, format="json")
    assert response.status_code == 404


def test_logged_in_user_gets_their_own_cart(products, shopper):
    client = APIClient()
    client.force_authenticate(shopper)
    client.post("/api/cart/items/", {"product": products["tea"].id, "quantity": 3}, format="json")
    assert Cart.objects.get().user == shopper
