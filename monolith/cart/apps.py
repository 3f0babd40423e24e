"""Cart app config."""

from django.apps import AppConfig


class CartConfig(AppConfig):
    name = "monolith.cart"
    label = "cart"
