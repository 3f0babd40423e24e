"""Review API routes, included under /api/ (the monolith's paths)."""

from django.urls import path

from servicekit import ids  # noqa: F401 - registers the <id:...> path converter

from . import apis

urlpatterns = [
    path("reviews/", apis.ReviewListApi.as_view(), name="reviews-api-review-list"),
    path("reviews/<id:review_id>/", apis.ReviewDetailApi.as_view(), name="reviews-api-review-detail"),
    path("products/<id:product_id>/rating/", apis.ProductRatingApi.as_view(), name="reviews-api-product-rating"),
]
