"""Orders API routes under /api/."""

from django.urls import path

from monolith.orders import apis

app_name = "orders_api"
urlpatterns = [
    path("orders/", apis.OrderListCreateApi.as_view(), name="list"),
    path("orders/<str:reference>/", apis.OrderDetailApi.as_view(), name="detail"),
    path("orders/<str:reference>/cancel/", apis.OrderCancelApi.as_view(), name="cancel"),
    path("orders/<str:reference>/ship/", apis.OrderShipApi.as_view(), name="ship"),  # staff
    path("orders/<str:reference>/deliver/", apis.OrderDeliverApi.as_view(), name="deliver"),  # staff
]
