"""Lazy accessor for the INVENTORY settings dict (read on every call, so override_settings applies)."""

from __future__ import annotations

from django.conf import settings

DEFAULTS = {
    "API_TOKENS": [],  # bearer tokens of services allowed staff writes (the monolith's checkout)
}


def inventory_setting(name: str):
    configured = getattr(settings, "INVENTORY", {}) or {}
    if name not in DEFAULTS:
        raise KeyError(f"unknown INVENTORY setting {name!r}")
    return configured.get(name, DEFAULTS[name])
