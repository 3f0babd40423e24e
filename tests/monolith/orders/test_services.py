"""orders.services: checkout (every failure path compensates), idempotency, cancel/ship/deliver transitions."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test import override_settings

from monolith.cart.models import CartLine
from monolith.catalog.models import Product
from monolith.inventory.errors import OutOfStock
from monolith.inventory.models import Reservation
from monolith.orders import services
from monolith.orders.errors import CartEmpty, IllegalTransition, PriceChanged, ProductUnavailable
from monolith.orders.models import Order, Payment
from monolith.payments import fake
from monolith.payments.base import PaymentProvider
from monolith.payments.errors import InvalidCard, PaymentDeclined, PaymentTimeout, PaymentUnavailable
from servicekit.errors import Conflict, InvalidInput, NotFound
from tests.monolith.orders.conftest import assert_no_leaked_reservation, stock_of

pytestmark = pytest.mark.django_db


def test_successful_checkout(checkout, products, cart, shopper):
    order = checkout()
    assert order.status == Order.Status.PAID and order.paid_at is not None
    assert order.user == shopper and order.reference.startswith("ORD-")
    assert (order.subtotal, order.total, order.currency) == (Decimal("52.50"), Decimal("52.50"), "USD")
    assert [(line.sku, line.name, line.unit_price, line.quantity, line.line_total) for line in order.lines.all()] == [
        (products["lamp"].sku, "Desk Lamp", Decimal("25.00"), 2, Decimal("50.00")),
        (products["pen"].sku, "Pen", Decimal("2.50"), 1, Decimal("2.50")),
    ]
    assert order.shipping_address_lines == ["Ada Lovelace", "1 Main St", "N1 9GU London", "GB"]
    payment = order.payments.get()
    assert (payment.kind, payment.status, payment.amount, payment.card_last4) == ("charge", "succeeded",
                                                                                  Decimal("52.50"), "4242")
    assert payment.provider_reference.startswith("ch_fake_")
    assert set(Reservation.objects.filter(reference=order.reference).values_list("status", flat=True)) == {
        "confirmed"
    }
    assert stock_of(products["lamp"]) == (3, 0) and stock_of(products["pen"]) == (0, 0)
    assert not CartLine.objects.filter(cart=cart).exists()
    assert_no_leaked_reservation()


def test_order_snapshots_survive_catalog_changes(checkout, products):
    order = checkout()
    Product.objects.filter(pk=products["lamp"].pk).update(name="Renamed", price=Decimal("99.00"))
    line = order.lines.get(sku=products["lamp"].sku)
    assert (line.name, line.unit_price) == ("Desk Lamp", Decimal("25.00"))


@pytest.mark.parametrize(
    ("card", "error", "charge_status"),
    [
        (fake.CARD_DECLINED, PaymentDeclined, "declined"),
        (fake.CARD_INSUFFICIENT_FUNDS, PaymentDeclined, "declined"),
        (fake.CARD_UNAVAILABLE, PaymentUnavailable, "failed"),
    ],
)
def test_payment_refused_cancels_the_order_and_releases_stock(checkout, products, cart, card, error, charge_status):
    with pytest.raises(error) as caught:
        checkout(card_number=card)
    order = Order.objects.get()
    assert caught.value.details["order"] == order.reference
    assert order.status == Order.Status.CANCELLED and order.failure_code == error.code
    assert [(p.kind, p.status) for p in order.payments.all()] == [("charge", charge_status)]  # nothing to refund
    assert set(Reservation.objects.values_list("status", flat=True)) == {"released"}
    assert stock_of(products["lamp"]) == (5, 0) and stock_of(products["pen"]) == (1, 0)
    assert CartLine.objects.filter(cart=cart).count() == 2  # kept for another try
    assert_no_leaked_reservation()


def test_timeout_cancels_releases_and_refunds(checkout, products, cart):
    with pytest.raises(PaymentTimeout) as caught:
        checkout(card_number=fake.CARD_TIMEOUT)
    assert caught.value.status_code == 504
    order = Order.objects.get()
    assert order.status == Order.Status.CANCELLED and order.failure_code == "payment_timeout"
    assert [(p.kind, p.status) for p in order.payments.order_by("id")] == [("charge", "timeout"),
                                                                           ("refund", "succeeded")]
    assert order.payments.get(kind="refund").amount == Decimal("52.50")
    assert stock_of(products["lamp"]) == (5, 0) and stock_of(products["pen"]) == (1, 0)
    assert_no_leaked_reservation()


class ExplodingProvider(PaymentProvider):
    """A provider with a bug: the outcome of the charge is unknown."""

    name = "exploding"
    refunds: list[str] = []

    def charge(self, **kwargs):
        raise RuntimeError("connection reset")

    def refund(self, *, reference, amount, currency):
        from monolith.payments.base import RefundResult

        ExplodingProvider.refunds.append(reference)
        return RefundResult(refund_id="re_1", amount=amount, currency=currency)


@override_settings(PAYMENTS={"PROVIDER": f"{__name__}.ExplodingProvider"})
def test_unexpected_provider_error_is_compensated_like_a_timeout(checkout, products):
    ExplodingProvider.refunds.clear()
    with pytest.raises(PaymentUnavailable):
        checkout()
    order = Order.objects.get()
    assert order.status == Order.Status.CANCELLED
    assert ExplodingProvider.refunds == [order.reference]
    assert [(p.kind, p.status) for p in order.payments.order_by("id")] == [("charge", "failed"),
                                                                           ("refund", "succeeded")]
    assert_no_leaked_reservation()


def test_out_of_stock_leaves_no_order(checkout, products, cart):
    CartLine.objects.filter(cart=cart, product=products["pen"]).update(quantity=2)
    with pytest.raises(OutOfStock) as caught:
        checkout()
    assert caught.value.details["products"] == [{"product": products["pen"].id, "requested": 2, "available": 1}]
    assert not Order.objects.exists() and not Reservation.objects.exists() and not Payment.objects.exists()
    assert stock_of(products["lamp"]) == (5, 0)
    assert CartLine.objects.filter(cart=cart).count() == 2
    assert_no_leaked_reservation()


def test_price_change_updates_the_cart_and_a_second_confirmation_succeeds(checkout, products, cart):
    Product.objects.filter(pk=products["lamp"].pk).update(price=Decimal("27.00"))
    with pytest.raises(PriceChanged) as caught:
        checkout(expected_total="52.50")
    assert caught.value.status_code == 409
    assert caught.value.details == {
        "lines": [{"product": products["lamp"].id, "old_price": "25.00", "new_price": "27.00"}],
        "total": "56.50",
    }
    assert not Order.objects.exists() and not Reservation.objects.exists()
    assert CartLine.objects.get(cart=cart, product=products["lamp"]).unit_price == Decimal("27.00")
    order = checkout(expected_total="56.50")
    assert order.total == Decimal("56.50") and order.status == Order.Status.PAID


def test_expected_total_mismatch_is_a_price_change(checkout, cart):
    with pytest.raises(PriceChanged) as caught:
        checkout(expected_total="50.00")
    assert caught.value.details == {"expected_total": "50.00", "total": "52.50"}
    assert not Order.objects.exists()
    with pytest.raises(InvalidInput):
        checkout(expected_total="fifty")


def test_empty_cart(checkout, cart, shopper, address):
    CartLine.objects.filter(cart=cart).delete()
    with pytest.raises(CartEmpty) as caught:
        checkout()
    assert caught.value.status_code == 409  # a well-formed request the cart's state refuses
    with pytest.raises(CartEmpty):
        checkout(cart=None)
    assert not Order.objects.exists()


def test_inactive_product_in_cart(checkout, cart, products):
    CartLine.objects.create(cart=cart, product=products["gone"], quantity=1, unit_price=Decimal("5.00"))
    with pytest.raises(ProductUnavailable) as caught:
        checkout()
    assert caught.value.status_code == 409 and caught.value.details == {"products": [products["gone"].id]}
    assert not Order.objects.exists() and not Reservation.objects.exists()


@pytest.mark.parametrize("card", ["", "1234", "4242424242424241"])
def test_invalid_card_is_refused_before_anything_is_reserved(checkout, card):
    with pytest.raises(InvalidCard):
        checkout(card_number=card)
    assert not Order.objects.exists() and not Reservation.objects.exists()


@pytest.mark.parametrize("key", ["", None, "x" * 65, "has space", "new\nline"])
def test_idempotency_key_is_required(checkout, key):
    with pytest.raises(InvalidInput):
        checkout(idempotency_key=key)
    assert not Order.objects.exists()


def test_double_submission_returns_the_same_order(checkout, products):
    first = checkout()
    second = checkout()
    assert second.pk == first.pk
    assert Order.objects.count() == 1 and Payment.objects.count() == 1
    assert stock_of(products["lamp"]) == (3, 0)


def test_replaying_a_declined_checkout_declines_again_without_a_second_order(checkout):
    with pytest.raises(PaymentDeclined):
        checkout(card_number=fake.CARD_DECLINED)
    with pytest.raises(PaymentDeclined) as replay:
        checkout(card_number=fake.CARD_SUCCESS)
    assert replay.value.details["order"] == Order.objects.get().reference
    assert Payment.objects.count() == 1
    assert checkout(idempotency_key="key-2").status == Order.Status.PAID  # a new attempt needs a new key


def test_keys_are_per_user(checkout, products, django_user_model, address):
    from monolith.cart.services import cart_add_product, cart_get_or_create_for_user

    first = checkout()
    other = django_user_model.objects.create_user(username="other")
    other_cart = cart_get_or_create_for_user(user=other)
    cart_add_product(cart=other_cart, product_id=products["lamp"].id, quantity=1)
    from monolith.accounts.services import address_create
    from tests.monolith.orders.conftest import ADDRESS

    theirs = checkout(user=other, cart=other_cart, address=address_create(user=other, **ADDRESS))
    assert theirs.pk != first.pk and theirs.user == other


def test_someone_elses_saved_address_is_refused(checkout, django_user_model):
    from monolith.accounts.services import address_create
    from tests.monolith.orders.conftest import ADDRESS

    other = django_user_model.objects.create_user(username="other")
    with pytest.raises(NotFound):
        checkout(address=address_create(user=other, **ADDRESS))
    assert not Order.objects.exists()


def test_ship_deliver_and_illegal_transitions(checkout):
    order = checkout()
    with pytest.raises(IllegalTransition) as caught:
        services.order_deliver(order=order)
    assert caught.value.status_code == 409 and caught.value.details["status"] == "paid"
    order = services.order_ship(order=order)
    assert order.status == Order.Status.SHIPPED and order.shipped_at
    with pytest.raises(IllegalTransition):
        services.order_cancel(order=order)
    with pytest.raises(IllegalTransition):
        services.order_ship(order=order)
    order = services.order_deliver(order=order)
    assert order.status == Order.Status.DELIVERED and order.delivered_at
    for transition in (services.order_ship, services.order_deliver, services.order_cancel):
        with pytest.raises(IllegalTransition):
            transition(order=order)
    assert Order.objects.get().status == Order.Status.DELIVERED


def test_cancelling_a_paid_order_restocks_and_refunds(checkout, products):
    order = checkout()
    order = services.order_cancel(order=order)
    assert order.status == Order.Status.CANCELLED and order.cancelled_at
    assert stock_of(products["lamp"]) == (5, 0) and stock_of(products["pen"]) == (1, 0)
    assert [(p.kind, p.status) for p in order.payments.order_by("id")] == [("charge", "succeeded"),
                                                                           ("refund", "succeeded")]
    with pytest.raises(IllegalTransition):
        services.order_cancel(order=order)
    assert Payment.objects.filter(kind="refund").count() == 1
    with pytest.raises(IllegalTransition):
        services.order_ship(order=order)


class CancelDuringChargeProvider(fake.FakePaymentProvider):
    """While the charge runs, somebody tries to cancel the order (and, in a second mode, forces it)."""

    seen: list = []
    force = False

    def charge(self, *, reference, **kwargs):
        order = Order.objects.get(reference=reference)
        CancelDuringChargeProvider.seen.append(connection.in_atomic_block)
        try:
            services.order_cancel(order=order)
        except IllegalTransition as exc:
            CancelDuringChargeProvider.seen.append(exc.details["status"])
        if CancelDuringChargeProvider.force:  # e.g. a manual database fix by an operator
            Order.objects.filter(pk=order.pk).update(status=Order.Status.CANCELLED)
        return super().charge(reference=reference, **kwargs)


@override_settings(PAYMENTS={"PROVIDER": f"{__name__}.CancelDuringChargeProvider"})
def test_an_order_being_paid_cannot_be_cancelled(checkout):
    CancelDuringChargeProvider.seen, CancelDuringChargeProvider.force = [], False
    order = checkout()
    assert CancelDuringChargeProvider.seen[1] == "placed"
    assert order.status == Order.Status.PAID


@override_settings(PAYMENTS={"PROVIDER": f"{__name__}.CancelDuringChargeProvider"})
def test_an_order_cancelled_behind_our_back_during_the_charge_is_refunded(checkout, products):
    CancelDuringChargeProvider.seen, CancelDuringChargeProvider.force = [], True
    with pytest.raises(Conflict):
        checkout()
    order = Order.objects.get()
    assert [(p.kind, p.status) for p in order.payments.order_by("id")] == [("charge", "succeeded"),
                                                                           ("refund", "succeeded")]
    assert stock_of(products["lamp"]) == (5, 0)
    assert_no_leaked_reservation()


@pytest.mark.django_db(transaction=True)
@override_settings(PAYMENTS={"PROVIDER": f"{__name__}.CancelDuringChargeProvider"})
def test_the_charge_runs_outside_any_transaction(checkout):
    CancelDuringChargeProvider.seen, CancelDuringChargeProvider.force = [], False
    assert checkout().status == Order.Status.PAID
    assert CancelDuringChargeProvider.seen[0] is False  # no transaction, so no row lock held while charging
