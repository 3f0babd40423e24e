"""Checkout and order pages: the whole journey a person takes, and every error shown on the form."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from monolith.cart.models import CartLine
from monolith.catalog.models import Product
from monolith.inventory.services import stock_set
from monolith.orders.models import Order
from monolith.payments import fake
from tests.monolith.orders.conftest import ADDRESS, assert_no_leaked_reservation, stock_of

pytestmark = pytest.mark.django_db


def _hidden(page: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]*)"', page).group(1)


def _form(page: str, **fields) -> dict:
    return {
        "idempotency_key": _hidden(page, "idempotency_key"),
        "expected_total": _hidden(page, "expected_total"),
        "card_number": fake.CARD_SUCCESS,
        **fields,
    }


def test_a_person_signs_up_fills_a_cart_checks_out_and_sees_the_order(client, products):
    client.post("/cart/add/", {"product_id": products["lamp"].id, "quantity": "2"})
    client.post("/accounts/signup/", {"username": "newbie", "email": "n@example.com",
                                      "password1": "pw-Long-Enough-9", "password2": "pw-Long-Enough-9"})
    page = client.get("/orders/checkout/").content.decode()
    assert 'data-testid="checkout-total">50.00 USD' in page
    for number, _outcome in fake.TEST_CARDS:
        assert number in page
    response = client.post("/orders/checkout/", _form(page, **ADDRESS, save_address="on"), follow=True)
    order = Order.objects.get()
    assert response.redirect_chain[-1][0] == f"/orders/{order.reference}/"
    page = response.content.decode()
    assert f"Thank you! Order {order.reference} is paid." in page
    assert 'data-testid="order-status">Paid<' in page and "card ending 4242" in page
    assert order.user.addresses.get().is_default  # saved for next time
    history = client.get("/orders/").content.decode()
    assert order.reference in history and "50.00 USD" in history
    assert stock_of(products["lamp"]) == (3, 0)
    assert "Your cart is empty." in client.get("/cart/").content.decode()


def test_checkout_needs_login_and_a_cart(client, shopper):
    response = client.get("/orders/checkout/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=/orders/checkout/")
    client.force_login(shopper)
    assert client.get("/orders/checkout/")["Location"] == "/cart/"


def test_saved_default_address_is_preselected(client, shopper, cart, address):
    client.force_login(shopper)
    page = client.get("/orders/checkout/").content.decode()
    assert f'<option value="{address.id}" selected>' in page
    response = client.post("/orders/checkout/", _form(page, address=address.id))
    assert response.status_code == 302
    assert Order.objects.get().ship_line1 == "1 Main St"


def test_double_submitted_form_makes_one_order(client, shopper, cart, address, products):
    client.force_login(shopper)
    data = _form(client.get("/orders/checkout/").content.decode(), address=address.id)
    first = client.post("/orders/checkout/", data)
    second = client.post("/orders/checkout/", data)
    assert first["Location"] == second["Location"]
    assert Order.objects.count() == 1 and stock_of(products["lamp"]) == (3, 0)


def test_declined_card_shows_the_error_and_a_fresh_key(client, shopper, cart, address, products):
    client.force_login(shopper)
    data = _form(client.get("/orders/checkout/").content.decode(), address=address.id,
                 card_number=fake.CARD_DECLINED)
    response = client.post("/orders/checkout/", data)
    assert response.status_code == 402
    page = response.content.decode()
    assert "Your card was declined." in page
    assert _hidden(page, "idempotency_key") != data["idempotency_key"]
    assert CartLine.objects.filter(cart=cart).count() == 2
    assert_no_leaked_reservation()
    retry = client.post("/orders/checkout/", _form(page, address=address.id))
    assert retry.status_code == 302
    assert list(Order.objects.order_by("id").values_list("status", flat=True)) == ["cancelled", "paid"]


def test_timeout_shows_the_error(client, shopper, cart, address, products):
    client.force_login(shopper)
    data = _form(client.get("/orders/checkout/").content.decode(), address=address.id,
                 card_number=fake.CARD_TIMEOUT)
    response = client.post("/orders/checkout/", data)
    assert response.status_code == 504
    assert "did not answer in time" in response.content.decode()
    assert stock_of(products["lamp"]) == (5, 0)
    assert_no_leaked_reservation()


def test_price_change_shows_new_total_to_confirm(client, shopper, cart, address, products):
    client.force_login(shopper)
    page = client.get("/orders/checkout/").content.decode()
    Product.objects.filter(pk=products["lamp"].pk).update(price=Decimal("30.00"))
    response = client.post("/orders/checkout/", _form(page, address=address.id))
    assert response.status_code == 409
    page = response.content.decode()
    assert "Prices changed since you added them" in page
    assert 'data-testid="checkout-total">62.50 USD' in page and _hidden(page, "expected_total") == "62.50"
    assert not Order.objects.exists()
    assert client.post("/orders/checkout/", _form(page, address=address.id)).status_code == 302
    assert Order.objects.get().total == Decimal("62.50")


def test_out_of_stock_is_shown(client, shopper, cart, address, products):
    client.force_login(shopper)
    page = client.get("/orders/checkout/").content.decode()
    stock_set(product_id=products["pen"].id, quantity_on_hand=0)  # the last pen went elsewhere meanwhile
    response = client.post("/orders/checkout/", _form(page, address=address.id))
    assert response.status_code == 409
    assert "Not enough stock for Pen (only 0 left)." in response.content.decode()
    assert not Order.objects.exists()


def test_incomplete_new_address_and_bad_card_are_form_errors(client, shopper, cart):
    client.force_login(shopper)
    page = client.get("/orders/checkout/").content.decode()
    response = client.post("/orders/checkout/", _form(page, name="Only a name"))
    assert response.status_code == 400 and "Required for a new address." in response.content.decode()
    response = client.post("/orders/checkout/", _form(page, **ADDRESS, card_number="1234 5678 9012 3456"))
    assert response.status_code == 400 and "That card number is not valid." in response.content.decode()
    assert not Order.objects.exists()


def test_order_detail_is_private_and_cancel_refunds(client, shopper, cart, address, products, django_user_model):
    client.force_login(shopper)
    client.post("/orders/checkout/", _form(client.get("/orders/checkout/").content.decode(), address=address.id))
    order = Order.objects.get()
    response = client.post(f"/orders/{order.reference}/cancel/", follow=True)
    assert "is cancelled; the payment is refunded" in response.content.decode()
    assert stock_of(products["lamp"]) == (5, 0)
    again = client.post(f"/orders/{order.reference}/cancel/", follow=True)
    assert "it cannot become cancelled" in again.content.decode()
    client.force_login(django_user_model.objects.create_user(username="stranger"))
    assert client.get(f"/orders/{order.reference}/").status_code == 404
