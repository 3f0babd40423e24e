"""The review aggregate's event payload: the hashed FIELDS plus what a follower needs to answer like the monolith.

``STRANGLER_SYNC["AGGREGATES"]["review"]["SNAPSHOT"]`` points here. The reviews service has no user table:
it shows the author's username and the owner's timestamps from the payload (extra fields are allowed
by the schema; verify hashes only the canonical FIELDS).
"""

from __future__ import annotations

from monolith.reviews.models import Review
from strangler_sync.snapshots import canonical_value


def review_payload(review: Review) -> dict:
    return {
        "id": review.id,
        "product_id": review.product_id,
        "user_id": review.user_id,
        "username": review.user.get_username(),
        "rating": review.rating,
        "title": review.title,
        "body": review.body,
        "created_at": canonical_value(review.created_at),
        "updated_at": canonical_value(review.updated_at),
    }
