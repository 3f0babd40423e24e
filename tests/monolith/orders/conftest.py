"""Orders test fixtures: stocked products, a customer with an address and a filled cart, leak checks."""

from __future__ import annotations

import pytest

from monolith.accounts.services import address_create
from monolith.cart.services import cart_add_product, cart_get_or_create_for_user
from monolith.inventory.models import Reservation, StockItem
from monolith.orders.models import Order
from monolith.payments import fake
from tests.monolith.catalog.factories import make_product

ADDRESS = {"name": "Ada Lovelace", "line1": "1 Main St", "city": "London", "postal_code": "N1 9GU", "country": "GB"}


@pytest.fixture(autouse=True)
def fast_password_hashing_and_payment_timeout(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.PAYMENTS = {**settings.PAYMENTS, "TIMEOUT_SECONDS": 0.05}


@pytest.fixture
def products(db):
    return {
        "lamp": make_product("Desk Lamp", price="25.00", stock=5),
        "pen": make_product("Pen", price="2.50", stock=1),
        "gone": make_product("Old Lamp", price="5.00", stock=3, is_active=False),
    }


@pytest.fixture
def shopper(django_user_model):
    return django_user_model.objects.create_user(username="shopper", password="pw-Shopper-1")


@pytest.fixture
def address(shopper):
    return address_create(user=shopper, **ADDRESS)


@pytest.fixture
def cart(shopper, products):
    """2 lamps and the last pen: 52.50 USD."""
    cart = cart_get_or_create_for_user(user=shopper)
    cart_add_product(cart=cart, product_id=products["lamp"].id, quantity=2)
    cart_add_product(cart=cart, product_id=products["pen"].id, quantity=1)
    return cart


@pytest.fixture
def checkout(shopper, cart, address):
    """order_place with sensible defaults; keyword arguments override them."""
    from monolith.orders.services import order_place

    def place(**overrides):
        kwargs = {"user": shopper, "cart": cart, "address": address, "card_number": fake.CARD_SUCCESS,
                  "idempotency_key": "key-1", **overrides}
        return order_place(**kwargs)

    return place


def stock_of(product) -> tuple[int, int]:
    item = StockItem.objects.get(product=product)
    return item.quantity_on_hand, item.quantity_reserved


def assert_no_leaked_reservation() -> None:
    """Nothing is held: no active reservation, no reserved quantity, no order stuck in 'placed'."""
    assert not Reservation.objects.filter(status=Reservation.Status.ACTIVE).exists()
    assert not StockItem.objects.filter(quantity_reserved__gt=0).exists()
    assert not Order.objects.filter(status=Order.Status.PLACED).exists()
