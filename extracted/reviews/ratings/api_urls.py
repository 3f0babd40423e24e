"""Review API routes, included under /api/ (the monolith's paths)."""

from django.urls import path

from . import apis

urlpatterns = [
    path("reviews/", apis.ReviewListApi.as_view(), name="reviews-api-review-list"),
    path("reviews/<int:review_id>/", apis.ReviewDetailApi.as_view(), name="reviews-api-review-detail"),
    path("products/<int:product_id>/rating/", apis.ProductRatingApi.as_view(), name="reviews-api-product-rating"),
]
