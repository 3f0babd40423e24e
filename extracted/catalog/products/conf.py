"""Lazy accessor for the CATALOG_SERVICE settings dict (read on every call, so override_settings applies)."""

from __future__ import annotations

from django.conf import settings

DEFAULTS = {
    "API_TOKENS": [],  # bearer tokens of services allowed staff writes
    "API_MAX_PAGE_SIZE": 100,  # upper bound for ?page_size= (the monolith's CATALOG["API_MAX_PAGE_SIZE"])
    "DEFAULT_CURRENCY": "USD",
}


def catalog_setting(name: str):
    configured = getattr(settings, "CATALOG_SERVICE", {}) or {}
    if name not in DEFAULTS:
        raise KeyError(f"unknown CATALOG_SERVICE setting {name!r}")
    return configured.get(name, DEFAULTS[name])
