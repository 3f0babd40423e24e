"""Orders stuck in 'placed' after a crash mid-payment are cancelled, their stock released and a refund recorded."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import override_settings

from monolith.orders.models import Order
from monolith.orders.services import order_expire_stale
from monolith.payments import fake
from monolith.payments.errors import PaymentTimeout
from tests.monolith.orders.conftest import assert_no_leaked_reservation, stock_of

pytestmark = pytest.mark.django_db


class ProcessDied(BaseException):
    """Not an Exception: like SIGKILL or a worker timeout, nothing in the checkout gets to compensate."""


class DyingProvider(fake.FakePaymentProvider):
    def charge(self, **kwargs):
        raise ProcessDied


@pytest.fixture
def stuck_order(checkout, products):
    with override_settings(PAYMENTS={"PROVIDER": f"{__name__}.DyingProvider"}), pytest.raises(ProcessDied):
        checkout()
    order = Order.objects.get()
    assert order.status == Order.Status.PLACED and stock_of(products["lamp"]) == (5, 2)
    return order


def test_recent_orders_are_left_alone(stuck_order, products):
    assert order_expire_stale(older_than=timedelta(minutes=15)) == []
    assert Order.objects.get().status == Order.Status.PLACED


def test_stale_order_is_cancelled_released_and_refunded(stuck_order, products):
    Order.objects.filter(pk=stuck_order.pk).update(placed_at=stuck_order.placed_at - timedelta(hours=1))
    assert [o.pk for o in order_expire_stale(older_than=timedelta(minutes=15))] == [stuck_order.pk]
    order = Order.objects.get()
    assert (order.status, order.failure_code) == ("cancelled", "payment_abandoned")
    assert [(p.kind, p.status) for p in order.payments.all()] == [("refund", "succeeded")]
    assert stock_of(products["lamp"]) == (5, 0)
    assert_no_leaked_reservation()
    assert order_expire_stale(older_than=timedelta(0)) == []  # idempotent


def test_retrying_the_abandoned_checkout_reports_the_unknown_outcome(stuck_order, checkout):
    order_expire_stale(older_than=timedelta(0))
    with pytest.raises(PaymentTimeout) as caught:
        checkout()  # same idempotency key as the request that died
    assert caught.value.details == {"order": stuck_order.reference}
    assert Order.objects.count() == 1


def test_command(stuck_order, capsys):
    call_command("orders_expire_stale", "--older-than", "0")
    assert f"cancelled {stuck_order.reference}" in capsys.readouterr().out
    assert Order.objects.get().status == Order.Status.CANCELLED
