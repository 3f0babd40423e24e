"""Two adds of one product to one cart at the same moment (a double click) on PostgreSQL: one line, summed."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from monolith.cart.models import CartLine
from monolith.cart.services import cart_add_product, cart_get_or_create_for_user

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_concurrent_adds_make_one_line(products, shopper):
    cart = cart_get_or_create_for_user(user=shopper)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def add():
        try:
            barrier.wait(timeout=10)
            cart_add_product(cart=cart, product_id=products["mug"].id, quantity=2)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=add) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert list(CartLine.objects.values_list("product_id", "quantity")) == [(products["mug"].id, 8)]
