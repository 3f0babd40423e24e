"""Lazy accessor for the REVIEWS settings dict (read on every call, so override_settings applies)."""

from __future__ import annotations

from django.conf import settings

DEFAULTS = {
    "API_MAX_PAGE_SIZE": 100,  # upper bound for ?page_size= (the monolith's CATALOG["API_MAX_PAGE_SIZE"])
}


def reviews_setting(name: str):
    configured = getattr(settings, "REVIEWS", {}) or {}
    if name not in DEFAULTS:
        raise KeyError(f"unknown REVIEWS setting {name!r}")
    return configured.get(name, DEFAULTS[name])
