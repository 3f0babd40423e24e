"""Reviews service URLs: the monolith's review API paths under /api/, the sync plane at /sync/, ops endpoints."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

api_patterns = [
    path("", include("extracted.reviews.ratings.api_urls")),
    path("schema/", SpectacularAPIView.as_view(), name="openapi-schema"),
]

urlpatterns = [
    path("", include("servicekit.health")),
    path("api/", include(api_patterns)),
    path("sync/", include("strangler_sync.urls")),
]

handler404 = "servicekit.errors.json_404"
handler500 = "servicekit.errors.json_500"
