"""Catalog service settings: the shared service settings (servicekit.service_settings) plus its own.

Database: CATALOG_DATABASE_URL; when unset but DATABASE_URL is PostgreSQL, a sibling database on the same
server named `<name>_catalog`; otherwise SQLite var/catalog.sqlite3 (servicekit.service_settings.service_database).
"""

from __future__ import annotations

import os

from servicekit import env
from servicekit.service_settings import service_settings

globals().update(service_settings(
    package=__package__,
    project="catalog",
    database_var_name="CATALOG_DATABASE_URL",
    apps=["extracted.catalog.products"],
    authentication=[
        # The monolith's users (session, Basic: whatever the monolith accepts), resolved once by the proxy and
        # forwarded as a signed identity (servicekit.identity); then other services holding a token. Neither
        # sends a challenge, so anonymous writes get 403 exactly like the monolith.
        "servicekit.identity.authentication.EdgeIdentityAuthentication",
        "extracted.catalog.products.authentication.ServiceTokenAuthentication",
    ],
    api_title="Catalog service API",
    api_description="Products and categories, extracted from the monolith with the same contract.",
))
PROJECT_NAME = "catalog"

# Service-specific settings, read through extracted.catalog.products.conf (override_settings works).
CATALOG_SERVICE = {
    # Bearer tokens accepted for staff writes from other services (comma-separated env).
    "API_TOKENS": env.env_list("CATALOG_API_TOKENS", []),
}

# The data plane (see strangler_sync.conf): this service follows the monolith's products and categories
# (queue sync.catalog) until ownership flips, then emits the same events for the monolith to follow.
# The aggregates' canonical fields (extracted/catalog/aggregates.py) are hashed by /sync/checksums/ and sent
# as event payloads: they must equal the monolith's (monolith/events.py) or verify sees every row as different.
STRANGLER_SYNC = {
    "ORIGIN": PROJECT_NAME,
    "QUEUE": "sync.catalog",
    "SUBSCRIPTIONS": ["product.*", "category.*"],
    # The monolith follows products and categories once this service owns them; the inventory and reviews
    # services keep learning which products exist (and are on sale) from whoever owns them.
    "SUBSCRIBERS": {
        "sync.monolith": ["product.*", "category.*"],
        "sync.inventory": ["product.*"],
        "sync.reviews": ["product.*"],
    },
    "RELAY_TRIGGER": os.environ.get("STRANGLER_SYNC_RELAY_TRIGGER", "celery"),
    "AGGREGATES": ["extracted.catalog.aggregates.PRODUCT", "extracted.catalog.aggregates.CATEGORY"],
}
