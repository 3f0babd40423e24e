"""Accounts API routes under /api/."""

from django.urls import path

from monolith.accounts import apis

app_name = "accounts_api"
urlpatterns = [
    path("me/", apis.MeApi.as_view(), name="me"),
    path("addresses/", apis.AddressListCreateApi.as_view(), name="addresses"),
]
