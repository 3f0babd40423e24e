"""Checkouts racing on real PostgreSQL: row locks decide who gets the last items; stock never goes negative."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from monolith.accounts.services import address_create
from monolith.cart.services import cart_add_product, cart_get_or_create_for_user
from monolith.inventory.errors import OutOfStock
from monolith.inventory.models import Reservation, StockItem
from monolith.orders.models import Order
from monolith.orders.services import order_place
from monolith.payments import fake
from tests.monolith.orders.conftest import ADDRESS, assert_no_leaked_reservation

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _race(calls):
    """Run the calls at the same moment, each on its own thread (so its own database connection)."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait(timeout=10)
            results[index] = call()
        except Exception as exc:  # the outcome under test
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    return results


def _customer(django_user_model, name, product, quantity=1):
    user = django_user_model.objects.create_user(username=name)
    cart = cart_get_or_create_for_user(user=user)
    cart_add_product(cart=cart, product_id=product.id, quantity=quantity)
    address = address_create(user=user, **ADDRESS)

    def checkout(key=f"key-{name}"):
        return order_place(user=user, cart=cart, address=address, card_number=fake.CARD_SUCCESS,
                           idempotency_key=key)

    return checkout


@pytest.mark.parametrize(("buyers", "stock"), [(2, 1), (4, 2)])
def test_racing_checkouts_sell_exactly_the_stock(products, django_user_model, buyers, stock):
    from monolith.inventory.services import stock_set

    pen = products["pen"]
    stock_set(product_id=pen.id, quantity_on_hand=stock)
    calls = [_customer(django_user_model, f"buyer{i}", pen) for i in range(buyers)]
    results = _race(calls)

    paid = [r for r in results if isinstance(r, Order)]
    refused = [r for r in results if isinstance(r, OutOfStock)]
    assert len(paid) == stock and len(refused) == buyers - stock, results
    assert Order.objects.count() == stock  # the losers left no order behind
    assert set(Order.objects.values_list("status", flat=True)) == {"paid"}
    item = StockItem.objects.get(product=pen)
    assert (item.quantity_on_hand, item.quantity_reserved) == (0, 0)
    assert Reservation.objects.filter(status="confirmed").count() == stock
    assert_no_leaked_reservation()


def test_concurrent_double_submission_makes_one_order(products, django_user_model):
    checkout = _customer(django_user_model, "clicker", products["lamp"], quantity=2)
    results = _race([lambda: checkout("same-key"), lambda: checkout("same-key")])
    assert all(isinstance(r, Order) for r in results), results
    assert results[0].pk == results[1].pk
    assert Order.objects.count() == 1
    item = StockItem.objects.get(product=products["lamp"])
    assert (item.quantity_on_hand, item.quantity_reserved) == (3, 0)
    assert Order.objects.get().status == "paid"
