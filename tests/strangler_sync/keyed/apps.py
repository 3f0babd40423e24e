"""App config of the keyed test app (installed only by the tests that use it)."""

from django.apps import AppConfig


class KeyedConfig(AppConfig):
    name = "tests.strangler_sync.keyed"
    label = "keyed"
    default_auto_field = "django.db.models.BigAutoField"
