"""Review API routes, included under /api/."""

from django.urls import path

from monolith.reviews import apis
from servicekit import ids  # noqa: F401 - registers the <id:...> path converter

urlpatterns = [
    path("reviews/", apis.ReviewListApi.as_view(), name="reviews-api-review-list"),
    path("reviews/<id:review_id>/", apis.ReviewDetailApi.as_view(), name="reviews-api-review-detail"),
    path("products/<id:product_id>/rating/", apis.ProductRatingApi.as_view(), name="reviews-api-product-rating"),
]
