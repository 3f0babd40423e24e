"""Monolith URLs: HTML pages at the root, the JSON API under /api/, ops endpoints at /healthz, /readyz, /metrics."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

api_patterns = [
    path("", include("monolith.catalog.api_urls")),
    path("", include("monolith.inventory.api_urls")),
    path("", include("monolith.cart.api_urls")),
    path("", include("monolith.orders.api_urls")),
    path("", include("monolith.reviews.api_urls")),
    path("", include("monolith.accounts.api_urls")),
    path("schema/", SpectacularAPIView.as_view(), name="openapi-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="openapi-schema"), name="openapi-docs"),
]

urlpatterns = [
    path("", include("servicekit.health")),
    path("admin/", admin.site.urls),
    # before /sync/'s own routes: who is asking, signed for a service (the proxies call it; clients cannot)
    path("sync/identity/", include("servicekit.identity.urls")),
    path("sync/", include("strangler_sync.urls")),
    path("api/", include(api_patterns)),
    path("accounts/", include("monolith.accounts.urls")),
    path("cart/", include("monolith.cart.urls")),
    path("orders/", include("monolith.orders.urls")),
    path("reviews/", include("monolith.reviews.urls")),
    path("", include("monolith.catalog.urls")),
]

handler404 = "monolith.views.page_not_found"
handler500 = "monolith.views.server_error"
