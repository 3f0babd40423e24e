"""Cart API routes under /api/."""

from django.urls import path

from monolith.cart import apis
from servicekit import ids  # noqa: F401 - registers the <id:...> path converter

app_name = "cart_api"
urlpatterns = [
    path("cart/", apis.CartApi.as_view(), name="cart"),
    path("cart/items/", apis.CartItemsApi.as_view(), name="items"),
    path("cart/items/<id:product_id>/", apis.CartItemApi.as_view(), name="item"),
]
