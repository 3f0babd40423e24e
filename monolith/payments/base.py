"""The payment provider interface the checkout talks to: charge and refund, keyed by the order reference."""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass
from decimal import Decimal

from monolith.payments.errors import InvalidCard

_DIGITS = re.compile(r"^\d{12,19}$")


@dataclass(frozen=True)
class ChargeResult:
    charge_id: str
    amount: Decimal
    currency: str


@dataclass(frozen=True)
class RefundResult:
    refund_id: str
    amount: Decimal
    currency: str


def card_number_clean(card_number: str) -> str:
    """Digits only (spaces and dashes allowed in input), 12-19 long, passing the Luhn check."""
    digits = re.sub(r"[\s-]", "", card_number or "")
    if not _DIGITS.match(digits):
        raise InvalidCard("Enter a card number of 12 to 19 digits.", details={"card_number": ["Invalid card number."]})
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    if total % 10:
        raise InvalidCard("That card number is not valid.", details={"card_number": ["Invalid card number."]})
    return digits


class PaymentProvider(abc.ABC):
    """A card processor. Implementations raise PaymentDeclined, PaymentTimeout or PaymentUnavailable.

    `reference` identifies the order: a provider must treat a repeated charge with the same reference as
    the same charge, and refund(reference=...) must work even when the charge's answer was lost.
    """

    name: str = "provider"

    @abc.abstractmethod
    def charge(self, *, reference: str, amount: Decimal, currency: str, card_number: str) -> ChargeResult: ...

    @abc.abstractmethod
    def refund(self, *, reference: str, amount: Decimal, currency: str) -> RefundResult: ...
