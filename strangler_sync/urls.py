"""URLs of the data plane; each project includes them with ``path("sync/", include("strangler_sync.urls"))``."""

from django.urls import path

from strangler_sync.views import ChecksumView

app_name = "strangler_sync"

urlpatterns = [
    path("checksums/<slug:aggregate>/", ChecksumView.as_view(), name="checksums"),
]
