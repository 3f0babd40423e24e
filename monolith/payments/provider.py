"""Which payment provider the checkout uses: PAYMENTS["PROVIDER"], a dotted path to a PaymentProvider class."""

from __future__ import annotations

from django.utils.module_loading import import_string

from monolith.payments.base import PaymentProvider
from monolith.payments.conf import payments_settings


def payment_provider() -> PaymentProvider:
    cls = import_string(payments_settings.PROVIDER)
    if not (isinstance(cls, type) and issubclass(cls, PaymentProvider)):
        raise TypeError(f"PAYMENTS['PROVIDER'] {payments_settings.PROVIDER!r} is not a PaymentProvider")
    return cls()
