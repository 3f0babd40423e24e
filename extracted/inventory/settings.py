"""Inventory service settings: the shared service settings (servicekit.service_settings) plus its own.

Database: INVENTORY_DATABASE_URL; when unset but DATABASE_URL is PostgreSQL, a sibling database on the same
server named `<name>_inventory`; otherwise SQLite var/inventory.sqlite3 (servicekit.service_settings.service_database).
"""

from __future__ import annotations

import os

from servicekit import env
from servicekit.service_settings import service_settings

globals().update(service_settings(
    package=__package__,
    project="inventory",
    database_var_name="INVENTORY_DATABASE_URL",
    apps=["extracted.inventory.stock"],
    authentication=[
        # The monolith's checkout (a service token) or staff users of the service's own database (HTTP Basic).
        # The token class comes first: it sends no challenge, so anonymous writes get 403 like the monolith.
        "extracted.inventory.stock.authentication.ServiceTokenAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    api_title="Inventory service API",
    api_description="Stock levels and reservations, extracted from the monolith with the same contract.",
))
PROJECT_NAME = "inventory"

# Service-specific settings, read through extracted.inventory.stock.conf (override_settings works).
INVENTORY = {
    # Bearer tokens accepted for staff writes from other services, e.g. the monolith's checkout.
    "API_TOKENS": env.env_list("INVENTORY_API_TOKENS", []),
}

# The data plane (see strangler_sync.conf): stock levels follow the monolith (queue sync.inventory) until
# ownership of "stock" flips here; then every stock write emits stock.changed and the monolith follows.
# Product events only tell which product ids exist (a product without stock reads as zeros, unknown is 404).
STRANGLER_SYNC = {
    "ORIGIN": PROJECT_NAME,
    "QUEUE": "sync.inventory",
    "SUBSCRIPTIONS": ["product.*", "stock.*"],
    "SUBSCRIBERS": {"sync.monolith": ["stock.*"]},
    "RELAY_TRIGGER": os.environ.get("STRANGLER_SYNC_RELAY_TRIGGER", "celery"),
    # stock is held here; products are only followed (learn which exist)
    "AGGREGATES": ["extracted.inventory.aggregates.STOCK", "extracted.events.PRODUCT"],
}
