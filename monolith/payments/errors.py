"""Payment errors: declined (402), timed out (504, the outcome is unknown), provider unavailable (503)."""

from __future__ import annotations

from servicekit.errors import DomainError, InvalidInput, Unavailable


class PaymentError(DomainError):
    code = "payment_error"
    status_code = 402


class PaymentDeclined(PaymentError):
    code = "payment_declined"
    status_code = 402


class PaymentTimeout(PaymentError):
    """No answer in time: the charge may or may not have happened, so callers must compensate (refund)."""

    code = "payment_timeout"
    status_code = 504


class PaymentUnavailable(PaymentError, Unavailable):
    code = "payment_unavailable"
    status_code = 503


class InvalidCard(InvalidInput):
    code = "invalid_card"
