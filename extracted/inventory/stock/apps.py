"""Inventory service app config."""

from django.apps import AppConfig


class StockConfig(AppConfig):
    name = "extracted.inventory.stock"
    label = "inventory_service"
    verbose_name = "Inventory service"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The project's sync handlers live next to settings (extracted/inventory/sync_handlers.py), outside
        # any app, so strangler_sync's per-app autodiscovery would miss them: register them here.
        from extracted.inventory import sync_handlers  # noqa: F401
