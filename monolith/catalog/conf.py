"""Catalog settings: the CATALOG dict in Django settings over these defaults, read lazily (override_settings works)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    "PAGE_SIZE": 24,  # products per HTML page
    "API_MAX_PAGE_SIZE": 100,  # upper bound for ?page_size= on the JSON API
    "DEFAULT_CURRENCY": "USD",
}


class CatalogSettings:
    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"unknown catalog setting {name!r}")
        return getattr(settings, "CATALOG", {}).get(name, DEFAULTS[name])


catalog_settings = CatalogSettings()
