"""URLs of the data plane; each project includes them with ``path("sync/", include("strangler_sync.urls"))``."""

from django.urls import path

from strangler_sync.ownership_views import OwnershipView
from strangler_sync.reconcile_views import ReconcileStateView
from strangler_sync.relay_views import RelayStateView
from strangler_sync.views import ChecksumView

app_name = "strangler_sync"

urlpatterns = [
    path("checksums/<slug:aggregate>/", ChecksumView.as_view(), name="checksums"),
    path("relay/", RelayStateView.as_view(), name="relay"),
    path("reconcile/", ReconcileStateView.as_view(), name="reconcile"),
    path("ownership/", OwnershipView.as_view(), name="ownership"),
]
