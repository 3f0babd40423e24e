"""Catalog service app config."""

from django.apps import AppConfig


class ProductsConfig(AppConfig):
    name = "extracted.catalog.products"
    label = "catalog_service"
    verbose_name = "Catalog service"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The project's sync handlers live next to settings (extracted/catalog/sync_handlers.py), outside
        # any app, so strangler_sync's per-app autodiscovery would miss them: register them here.
        from extracted.catalog import sync_handlers  # noqa: F401
