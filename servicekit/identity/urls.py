"""URLconf of the identity endpoint: ``path("sync/identity/", include("servicekit.identity.urls"))``."""

from django.urls import path

from .views import IdentityApi

app_name = "strangler_identity"
urlpatterns = [path("", IdentityApi.as_view(), name="identity")]
