"""Cart API routes under /api/."""

from django.urls import path

from monolith.cart import apis

app_name = "cart_api"
urlpatterns = [
    path("cart/", apis.CartApi.as_view(), name="cart"),
    path("cart/items/", apis.CartItemsApi.as_view(), name="items"),
    path("cart/items/<int:product_id>/", apis.CartItemApi.as_view(), name="item"),
]
