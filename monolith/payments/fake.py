"""A local fake card processor for development and tests. No network; the card number decides the outcome.

Test cards (any other number that passes the Luhn check is charged successfully):

==================  ===========================================================================
card number         outcome
==================  ===========================================================================
4242424242424242    charged
4000000000000002    declined (``card_declined``)
4000000000009995    declined (``insufficient_funds``)
4000000000000119    times out: sleeps PAYMENTS["TIMEOUT_SECONDS"] then raises PaymentTimeout;
                    the fake behaves as if the charge went through and only the answer was lost,
                    so the checkout must refund it
4000000000000259    processor unavailable (PaymentUnavailable, nothing charged)
==================  ===========================================================================

Refunds always succeed. Charge and refund ids are derived from the order reference, so a retried
charge or refund gets the same id (the idempotency a real processor gives per idempotency key).
"""

from __future__ import annotations

import hashlib
import time
from decimal import Decimal

from monolith.payments.base import ChargeResult, PaymentProvider, RefundResult, card_number_clean
from monolith.payments.conf import payments_settings
from monolith.payments.errors import PaymentDeclined, PaymentTimeout, PaymentUnavailable

CARD_SUCCESS = "4242424242424242"
CARD_DECLINED = "4000000000000002"
CARD_INSUFFICIENT_FUNDS = "4000000000009995"
CARD_TIMEOUT = "4000000000000119"
CARD_UNAVAILABLE = "4000000000000259"

TEST_CARDS = [
    (CARD_SUCCESS, "payment succeeds"),
    (CARD_DECLINED, "declined"),
    (CARD_INSUFFICIENT_FUNDS, "declined: insufficient funds"),
    (CARD_TIMEOUT, "the processor times out (the order is cancelled and refunded)"),
    (CARD_UNAVAILABLE, "the processor is unavailable"),
]


def _fake_id(prefix: str, reference: str) -> str:
    return f"{prefix}_fake_{hashlib.sha256(reference.encode()).hexdigest()[:16]}"


class FakePaymentProvider(PaymentProvider):
    name = "fake"

    def charge(self, *, reference: str, amount: Decimal, currency: str, card_number: str) -> ChargeResult:
        digits = card_number_clean(card_number)
        if digits == CARD_DECLINED:
            raise PaymentDeclined("Your card was declined.", details={"decline_code": "card_declined"})
        if digits == CARD_INSUFFICIENT_FUNDS:
            raise PaymentDeclined(
                "Your card has insufficient funds.", details={"decline_code": "insufficient_funds"}
            )
        if digits == CARD_UNAVAILABLE:
            raise PaymentUnavailable("The payment processor is unavailable; nothing was charged.")
        if digits == CARD_TIMEOUT:
            time.sleep(float(payments_settings.TIMEOUT_SECONDS))
            raise PaymentTimeout("The payment processor did not answer in time.")
        return ChargeResult(charge_id=_fake_id("ch", reference), amount=amount, currency=currency)

    def refund(self, *, reference: str, amount: Decimal, currency: str) -> RefundResult:
        return RefundResult(refund_id=_fake_id("re", reference), amount=amount, currency=currency)
