"""The reviews service's review aggregate: the storefront contract (``extracted.events``) bound to its model.
The same canonical fields as the monolith's; the payload adds username and timestamps."""

from extracted import events

REVIEW = events.REVIEW.bind(
    model="reviews_service.Review",
    fields=["id", "product_id", "user_id", "rating", "title", "body"],
    snapshot="extracted.reviews.ratings.services.review_payload",
)
