"""A real browser (headless Chromium) against a live server: sign up, fill the cart, get declined, pay, see it."""

from __future__ import annotations

import pytest

from monolith.inventory.models import StockItem
from monolith.orders.models import Order
from monolith.payments import fake
from tests.monolith.catalog.factories import make_product
from tests.monolith.orders.browser import Browser

pytestmark = [pytest.mark.chromium, pytest.mark.slow]


@pytest.fixture
def browser():
    browser = Browser()
    yield browser
    browser.close()


def test_a_shopper_buys_in_a_real_browser(live_server, browser):
    lamp = make_product("Browser Lamp", price="19.99", stock=3)
    base = live_server.url

    browser.goto(f"{base}/p/{lamp.slug}/")
    browser.fill("form.add-to-cart input[name=quantity]", "2")
    browser.click_and_wait("form.add-to-cart button[type=submit]")
    assert browser.url == f"{base}/cart/"
    assert "Added Browser Lamp to your cart." in browser.text()
    assert browser.text("[data-testid=cart-subtotal]") == "39.98 USD"

    browser.goto(f"{base}/accounts/signup/")
    for name, value in {"username": "browser-buyer", "email": "bb@example.com",
                        "password1": "pw-Long-Enough-9", "password2": "pw-Long-Enough-9"}.items():
        browser.fill(f"input[name={name}]", value)
    browser.click_and_wait("form.form-box button[type=submit]")
    assert browser.url == f"{base}/accounts/profile/"
    assert browser.text("[data-testid=cart-count]") == "2"  # the anonymous cart came along

    browser.goto(f"{base}/orders/checkout/")
    address = {"name": "Bea Browser", "line1": "5 Chrome Rd", "city": "Mountain", "postal_code": "94043",
               "country": "US", "card_number": fake.CARD_DECLINED}
    for name, value in address.items():
        browser.fill(f"input[name={name}]", value)
    browser.click_and_wait("form.form-box button[type=submit]")
    assert "Your card was declined." in browser.text()
    assert StockItem.objects.get(product=lamp).quantity_reserved == 0

    # The address was saved by the first try (and is now the default): ship there.
    browser.evaluate("document.querySelector('select[name=address]').selectedIndex = 1")
    browser.fill("input[name=card_number]", fake.CARD_SUCCESS)
    browser.click_and_wait("form.form-box button[type=submit]")
    order = Order.objects.get(status="paid")
    assert browser.url == f"{base}/orders/{order.reference}/"
    assert browser.text("[data-testid=order-status]") == "Paid"
    assert "5 Chrome Rd" in browser.text("address")
    stock = StockItem.objects.get(product=lamp)
    assert (stock.quantity_on_hand, stock.quantity_reserved) == (1, 0)

    browser.goto(f"{base}/orders/")
    assert order.reference in browser.text("[data-testid=order-list]")
