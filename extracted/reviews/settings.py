"""Reviews service settings: the shared service settings (servicekit.service_settings) plus its own.

Database: REVIEWS_DATABASE_URL; when unset but DATABASE_URL is PostgreSQL, a sibling database on the same
server named `<name>_reviews`; otherwise SQLite var/reviews.sqlite3 (servicekit.service_settings.service_database).
"""

from __future__ import annotations

import os

from servicekit.service_settings import service_settings

globals().update(service_settings(
    package=__package__,
    project="reviews",
    database_var_name="REVIEWS_DATABASE_URL",
    apps=["extracted.reviews.ratings"],
    authentication=[
        # Customers are the monolith's users: the proxy resolves their credentials once (the monolith's
        # identity endpoint) and forwards a signed identity (servicekit.identity). No challenge: anonymous
        # writes get 403, as on the monolith.
        "servicekit.identity.authentication.EdgeIdentityAuthentication",
    ],
    api_title="Reviews service API",
    api_description="Reviews and ratings, extracted from the monolith with the same contract.",
))
PROJECT_NAME = "reviews"

# The data plane (see strangler_sync.conf): reviews follow the monolith (queue sync.reviews) until ownership
# of "review" flips here; then every write emits review.* and the monolith follows (its product page's rating).
# Product events tell which products exist and are on sale (reviews and ratings of others are 404/400).
STRANGLER_SYNC = {
    "ORIGIN": PROJECT_NAME,
    "QUEUE": "sync.reviews",
    "SUBSCRIPTIONS": ["product.*", "review.*"],
    "SUBSCRIBERS": {"sync.monolith": ["review.*"]},
    "RELAY_TRIGGER": os.environ.get("STRANGLER_SYNC_RELAY_TRIGGER", "celery"),
    # reviews are held here; products are only followed (learn which exist)
    "AGGREGATES": ["extracted.reviews.aggregates.REVIEW", "extracted.events.PRODUCT"],
}
