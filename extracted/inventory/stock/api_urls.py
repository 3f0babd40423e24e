"""Inventory API routes under /api/ (the monolith's paths, served here once the proxy moves them)."""

from django.urls import path

from servicekit import ids  # noqa: F401 - registers the <id:...> path converter

from . import apis

app_name = "inventory_api"
urlpatterns = [
    path("stock/", apis.StockListApi.as_view(), name="stock-list"),
    path("stock/<id:product_id>/", apis.StockDetailApi.as_view(), name="stock-detail"),
    path("reservations/", apis.ReservationCreateApi.as_view(), name="reservation-create"),
    path("reservations/<str:reference>/release/", apis.ReservationReleaseApi.as_view(), name="reservation-release"),
    path("reservations/<str:reference>/confirm/", apis.ReservationConfirmApi.as_view(), name="reservation-confirm"),
    path("reservations/<str:reference>/return/", apis.ReservationReturnApi.as_view(), name="reservation-return"),
]
