"""Cart pages: add from a product page, update/remove forms, totals, errors shown as messages, header badge."""

from __future__ import annotations

import pytest

from monolith.cart.models import CartLine

pytestmark = pytest.mark.django_db


def test_add_update_remove_through_the_forms(client, products):
    mug = products["mug"]
    response = client.post("/cart/add/", {"product_id": mug.id, "quantity": "2"}, follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Added Mug to your cart." in page
    assert 'data-testid="cart-subtotal">17.00 USD' in page
    assert 'data-testid="cart-count">2<' in page  # the context processor feeds base.html's badge

    client.post("/cart/update/", {"product_id": mug.id, "quantity": "5"})
    assert CartLine.objects.get().quantity == 5
    client.post("/cart/remove/", {"product_id": mug.id})
    assert not CartLine.objects.exists()
    assert "Your cart is empty." in client.get("/cart/").content.decode()


def test_add_redirects_back_to_a_safe_next_only(client, products):
    ok = client.post("/cart/add/", {"product_id": products["mug"].id, "next": "/products/x/"})
    assert ok.status_code == 302 and ok["Location"] == "/products/x/"
    evil = client.post("/cart/add/", {"product_id": products["mug"].id, "next": "https://evil.example/"})
    assert evil["Location"] == "/cart/"


@pytest.mark.parametrize("quantity", ["0", "100", "1.5", "lots"])
def test_invalid_quantity_is_shown_as_an_error(client, products, quantity):
    response = client.post("/cart/add/", {"product_id": products["mug"].id, "quantity": quantity}, follow=True)
    assert "Quantity must be a whole number from 1 to 99." in response.content.decode()
    assert not CartLine.objects.exists()


def test_update_with_invalid_quantity_keeps_the_line(client, products):
    client.post("/cart/add/", {"product_id": products["mug"].id, "quantity": "3"})
    response = client.post("/cart/update/", {"product_id": products["mug"].id, "quantity": "-1"}, follow=True)
    assert "Quantity must be a whole number" in response.content.decode()
    assert CartLine.objects.get().quantity == 3


def test_inactive_and_unknown_products_are_refused(client, products):
    page = client.post("/cart/add/", {"product_id": products["gone"].id}, follow=True).content.decode()
    assert "Discontinued is no longer for sale." in page
    page = client.post("/cart/add/", {"product_id": "999999"}, follow=True).content.decode()
    assert "Unknown product 999999." in page
    assert not CartLine.objects.exists()


def test_cart_pages_refuse_get_for_writes(client, products):
    assert client.get("/cart/add/").status_code == 405
