"""cart.services and cart.selectors: add/update/remove, quantity rules, merge on login, totals."""

from __future__ import annotations

from decimal import Decimal

import pytest

from monolith.cart import selectors, services
from monolith.cart.models import Cart, CartLine
from monolith.catalog.models import Product
from servicekit.errors import Conflict, InvalidInput, NotFound

pytestmark = pytest.mark.django_db


@pytest.fixture
def cart(shopper):
    return services.cart_get_or_create_for_user(user=shopper)


def test_add_snapshots_the_price_and_sums_quantities(cart, products):
    services.cart_add_product(cart=cart, product_id=products["mug"].id, quantity=2)
    Product.objects.filter(pk=products["mug"].pk).update(price=Decimal("9.00"))
    line = services.cart_add_product(cart=cart, product_id=products["mug"].id, quantity="3")
    assert (line.quantity, line.unit_price) == (5, Decimal("8.50"))
    assert CartLine.objects.count() == 1


@pytest.mark.parametrize("quantity", [0, -1, 100, 2.5, "2.5", "two", "", None, True])
def test_add_refuses_invalid_quantities(cart, products, quantity):
    with pytest.raises(InvalidInput) as caught:
        services.cart_add_product(cart=cart, product_id=products["mug"].id, quantity=quantity)
    assert "quantity" in caught.value.details
    assert not CartLine.objects.exists()


def test_add_may_not_push_a_line_past_99(cart, products):
    services.cart_add_product(cart=cart, product_id=products["mug"].id, quantity=60)
    with pytest.raises(Conflict):  # well-formed, refused by what the cart holds
        services.cart_add_product(cart=cart, product_id=products["mug"].id, quantity=40)
    assert CartLine.objects.get().quantity == 60


def test_add_unknown_product_is_not_found_and_inactive_is_a_conflict(cart, products):
    with pytest.raises(NotFound):
        services.cart_add_product(cart=cart, product_id=987654, quantity=1)
    with pytest.raises(Conflict) as caught:
        services.cart_add_product(cart=cart, product_id=products["gone"].id, quantity=1)
    assert caught.value.code == "product_unavailable"
    assert not CartLine.objects.exists()


def test_update_and_remove(cart, products):
    services.cart_add_product(cart=cart, product_id=products["tea"].id, quantity=1)
    assert services.cart_update_line(cart=cart, product_id=products["tea"].id, quantity=7).quantity == 7
    with pytest.raises(InvalidInput):
        services.cart_update_line(cart=cart, product_id=products["tea"].id, quantity=0)
    with pytest.raises(NotFound):
        services.cart_update_line(cart=cart, product_id=products["mug"].id, quantity=1)
    services.cart_remove_line(cart=cart, product_id=products["tea"].id)
    with pytest.raises(NotFound):
        services.cart_remove_line(cart=cart, product_id=products["tea"].id)
    assert not CartLine.objects.exists()


def test_merge_sums_quantities_caps_at_99_and_drops_the_anonymous_cart(cart, products):
    anonymous = Cart.objects.create(session_key="s" * 32)
    services.cart_add_product(cart=anonymous, product_id=products["mug"].id, quantity=50)
    services.cart_add_product(cart=anonymous, product_id=products["tea"].id, quantity=2)
    services.cart_add_product(cart=cart, product_id=products["mug"].id, quantity=60)
    services.cart_merge(source=anonymous, target=cart)
    assert {line.product_id: line.quantity for line in cart.lines.all()} == {
        products["mug"].id: 99, products["tea"].id: 2,
    }
    assert not Cart.objects.filter(pk=anonymous.pk).exists()


def test_totals_are_decimal_sums_of_snapshot_prices(cart, products):
    services.cart_add_product(cart=cart, product_id=products["mug"].id, quantity=3)
    services.cart_add_product(cart=cart, product_id=products["tea"].id, quantity=2)
    totals = selectors.cart_totals(cart=cart)
    assert totals.subtotal == Decimal("34.00") and isinstance(totals.subtotal, Decimal)
    assert totals.item_count == 5
    assert selectors.cart_totals(cart=None).subtotal == Decimal("0.00")


def test_reprice_and_clear(cart, products):
    services.cart_add_product(cart=cart, product_id=products["mug"].id, quantity=1)
    services.cart_reprice(cart=cart, prices={products["mug"].id: Decimal("7.00")})
    assert CartLine.objects.get().unit_price == Decimal("7.00")
    services.cart_clear(cart=cart)
    assert not CartLine.objects.exists()
