"""App config: autodiscovers every installed app's ``sync_handlers`` module once the registry is ready, and
registers the system checks (``strangler_sync.checks``)."""

from django.apps import AppConfig


class StranglerSyncConfig(AppConfig):
    name = "strangler_sync"
    verbose_name = "Strangler sync (data plane)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # checks and metrics register the system checks and the Prometheus collectors; sqlite_transport and
        # broker register sqlite-queue:// and filesystem:// with kombu (Celery reads the same broker URL)
        from strangler_sync import broker, checks, handlers, metrics, sqlite_transport  # noqa: F401

        handlers.handlers_autodiscover()
