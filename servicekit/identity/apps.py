"""Django app config of servicekit.identity: registers its system checks."""

from django.apps import AppConfig


class IdentityConfig(AppConfig):
    name = "servicekit.identity"
    label = "servicekit_identity"
    verbose_name = "Identity at the edge"

    def ready(self) -> None:
        from servicekit.identity import checks  # noqa: F401  (registers the checks)
