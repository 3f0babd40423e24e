"""Settings accessor: ``identity_setting(name)`` reads ``settings.STRANGLER_IDENTITY`` lazily.

Keys (all optional; defaults below)::

    STRANGLER_IDENTITY = {
        "KEY": $STRANGLER_IDENTITY_KEY,   # shared HS256 signing key (>= 32 bytes) of the monolith and the services;
                                          # in DEBUG a fixed, public development key when the variable is unset
        "AUDIENCE": "",                   # a service: the audience its identities must name (its upstream name)
        "LIFETIME": 60,                   # seconds an identity is valid (the proxies cache it for less)
        "LEEWAY": 5,                      # seconds of clock skew tolerated on expiry
        "HEADER": "X-Strangler-Identity", # the request header carrying the identity (the route file's identity.header)
    }
"""

from __future__ import annotations

import os

from django.conf import settings

KEY_ENV = "STRANGLER_IDENTITY_KEY"
# Used only with DEBUG on and no key set, so a development stack (monolith + services) agrees without setup.
DEV_KEY = "dev-insecure-strangler-identity-key-never-use-in-production"
MIN_KEY_BYTES = 32  # RFC 7518 3.2: an HS256 key at least as long as the hash
ISSUER = "strangler-identity"

DEFAULTS = {
    "KEY": None,
    "AUDIENCE": "",
    "LIFETIME": 60,
    "LEEWAY": 5,
    "HEADER": "X-Strangler-Identity",
}


def identity_setting(name: str):
    configured = getattr(settings, "STRANGLER_IDENTITY", {}) or {}
    if name not in DEFAULTS:
        raise KeyError(f"unknown STRANGLER_IDENTITY setting {name!r}")
    return configured.get(name, DEFAULTS[name])


def identity_key() -> str | None:
    """The signing key: the setting, else $STRANGLER_IDENTITY_KEY, else (DEBUG only) the development key."""
    key = identity_setting("KEY") or os.environ.get(KEY_ENV)
    if key:
        return key
    return DEV_KEY if settings.DEBUG else None
