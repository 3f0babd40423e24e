"""App config: autodiscovers every installed app's ``sync_handlers`` module once the registry is ready, and
registers the system checks (``strangler_sync.checks``)."""

from django.apps import AppConfig


class StranglerSyncConfig(AppConfig):
    name = "strangler_sync"
    verbose_name = "Strangler sync (data plane)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from strangler_sync import checks, handlers, metrics  # noqa: F401 - registers the checks and collectors

        handlers.handlers_autodiscover()
