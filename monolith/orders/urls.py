"""Orders pages under /orders/."""

from django.urls import path

from monolith.orders import views

app_name = "orders"
urlpatterns = [
    path("", views.order_list, name="list"),
    path("checkout/", views.checkout, name="checkout"),
    path("<str:reference>/", views.order_detail, name="detail"),
    path("<str:reference>/cancel/", views.order_cancel, name="cancel"),
]
