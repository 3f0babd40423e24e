"""The fake payment provider: documented test cards, the simulated timeout, card validation, provider choice."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from django.test import override_settings

from monolith.payments import fake
from monolith.payments.base import PaymentProvider, card_number_clean
from monolith.payments.errors import InvalidCard, PaymentDeclined, PaymentTimeout, PaymentUnavailable
from monolith.payments.provider import payment_provider

AMOUNT = Decimal("12.34")


def _charge(card: str):
    return fake.FakePaymentProvider().charge(reference="ORD-1", amount=AMOUNT, currency="USD", card_number=card)


def test_success_card_charges_with_a_stable_id():
    first = _charge("4242 4242 4242 4242")
    assert first.amount == AMOUNT and first.charge_id.startswith("ch_fake_")
    assert _charge(fake.CARD_SUCCESS).charge_id == first.charge_id  # same reference, same charge


@pytest.mark.parametrize(
    ("card", "decline_code"),
    [(fake.CARD_DECLINED, "card_declined"), (fake.CARD_INSUFFICIENT_FUNDS, "insufficient_funds")],
)
def test_decline_cards(card, decline_code):
    with pytest.raises(PaymentDeclined) as caught:
        _charge(card)
    assert caught.value.status_code == 402 and caught.value.details["decline_code"] == decline_code


def test_unavailable_card():
    with pytest.raises(PaymentUnavailable) as caught:
        _charge(fake.CARD_UNAVAILABLE)
    assert caught.value.status_code == 503


@override_settings(PAYMENTS={"TIMEOUT_SECONDS": 0.05})
def test_timeout_card_waits_the_configured_timeout_then_raises():
    started = time.monotonic()
    with pytest.raises(PaymentTimeout) as caught:
        _charge(fake.CARD_TIMEOUT)
    # At least the configured 0.05 s; under the 2 s default by a margin a busy machine's stalls do not eat.
    assert 0.05 <= time.monotonic() - started < 1.9
    assert caught.value.status_code == 504 and caught.value.code == "payment_timeout"


@pytest.mark.parametrize("card", ["", "4242", "4242424242424241", "4242-4242-4242-424x", "1" * 20])
def test_invalid_card_numbers(card):
    with pytest.raises(InvalidCard):
        card_number_clean(card)


def test_refund_always_succeeds():
    refund = fake.FakePaymentProvider().refund(reference="ORD-1", amount=AMOUNT, currency="USD")
    assert refund.refund_id.startswith("re_fake_") and refund.amount == AMOUNT


def test_every_documented_card_is_in_the_docstring_and_the_storefront_readme():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[3] / "monolith" / "README.md").read_text()
    assert "## Test cards" in readme
    for number, _outcome in fake.TEST_CARDS:
        assert number in fake.__doc__
        assert number in readme


class _OtherProvider(PaymentProvider):
    name = "other"

    def charge(self, **kwargs):
        raise NotImplementedError

    def refund(self, **kwargs):
        raise NotImplementedError


def test_provider_is_chosen_by_settings():
    assert isinstance(payment_provider(), fake.FakePaymentProvider)
    with override_settings(PAYMENTS={"PROVIDER": f"{__name__}._OtherProvider"}):
        assert payment_provider().name == "other"
    with override_settings(PAYMENTS={"PROVIDER": "decimal.Decimal"}), pytest.raises(TypeError):
        payment_provider()
