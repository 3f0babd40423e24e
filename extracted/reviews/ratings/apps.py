"""Reviews service app config."""

from django.apps import AppConfig


class RatingsConfig(AppConfig):
    name = "extracted.reviews.ratings"
    label = "reviews_service"
    verbose_name = "Reviews service"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The project's sync handlers live next to settings (extracted/reviews/sync_handlers.py), outside any
        # app, so strangler_sync's per-app autodiscovery would miss them: register them here.
        from extracted.reviews import sync_handlers  # noqa: F401
