"""App config: autodiscovers every installed app's ``sync_handlers`` module once the registry is ready,
registers the system checks (``strangler_sync.checks``), and turns OpenTelemetry tracing on when the OTEL_*
environment asks for it (``servicekit.tracing``: the Django instrumentation, the outbox, relay and consumer spans),
under this project's ORIGIN as the service name."""

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
        from servicekit.tracing import django_instrument, tracing_setup, tracing_wanted

        if tracing_wanted():  # off (the default): nothing else is read or imported
            from strangler_sync.conf import sync_settings

            tracing_setup(service_name=sync_settings().origin)
            django_instrument()
