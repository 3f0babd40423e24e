"""System checks of servicekit.identity: a signing key that is set and long enough; a service's audience."""

from __future__ import annotations

from django.conf import settings
from django.core import checks

from .conf import KEY_ENV, MIN_KEY_BYTES, identity_key, identity_setting

AUTHENTICATION_CLASS = "servicekit.identity.authentication.EdgeIdentityAuthentication"


def endpoint_mounted() -> bool:
    """Whether the project's URLconf serves the identity endpoint (servicekit.identity.urls)."""
    from django.urls import NoReverseMatch, reverse

    try:
        reverse("strangler_identity:identity")
    except NoReverseMatch:
        return False
    return True


@checks.register(checks.Tags.security)
def identity_checks(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """A key is needed where identities are signed (the endpoint is mounted) or verified (the class is used)."""
    errors = []
    classes = (getattr(settings, "REST_FRAMEWORK", {}) or {}).get("DEFAULT_AUTHENTICATION_CLASSES", [])
    verifies = any(str(c).endswith(".EdgeIdentityAuthentication") for c in classes)
    if not verifies and not endpoint_mounted():
        return errors
    key = identity_key()
    if not key:
        errors.append(checks.Error(
            f"No identity signing key: set ${KEY_ENV} (the same value on the monolith and every service).",
            id="servicekit_identity.E001"))
    elif len(key.encode()) < MIN_KEY_BYTES:
        errors.append(checks.Error(f"The identity signing key is shorter than {MIN_KEY_BYTES} bytes.",
                                   id="servicekit_identity.E002"))
    if verifies and not identity_setting("AUDIENCE"):
        errors.append(checks.Error(
            'STRANGLER_IDENTITY["AUDIENCE"] must name this service (its upstream name in the route file) '
            f"when {AUTHENTICATION_CLASS} authenticates its requests.", id="servicekit_identity.E003"))
    return errors
