"""Inventory API routes under /api/ (these paths later move to the inventory service)."""

from django.urls import path

from monolith.inventory import apis
from servicekit import ids  # noqa: F401 - registers the <id:...> path converter

app_name = "inventory_api"
urlpatterns = [
    path("stock/", apis.StockListApi.as_view(), name="stock-list"),
    path("stock/<id:product_id>/", apis.StockDetailApi.as_view(), name="stock-detail"),
    path("reservations/", apis.ReservationCreateApi.as_view(), name="reservation-create"),
    path("reservations/<str:reference>/release/", apis.ReservationReleaseApi.as_view(), name="reservation-release"),
    path("reservations/<str:reference>/confirm/", apis.ReservationConfirmApi.as_view(), name="reservation-confirm"),
    path("reservations/<str:reference>/return/", apis.ReservationReturnApi.as_view(), name="reservation-return"),
]
