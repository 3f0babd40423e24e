"""Payments settings: settings.PAYMENTS over these defaults, read lazily (override_settings works)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    "PROVIDER": "monolith.payments.fake.FakePaymentProvider",
    "TIMEOUT_SECONDS": 2.0,  # how long a charge may take before we give up on it
}


class PaymentsSettings:
    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"unknown payments setting {name!r}")
        return getattr(settings, "PAYMENTS", {}).get(name, DEFAULTS[name])


payments_settings = PaymentsSettings()
