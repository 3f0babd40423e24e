"""Cart API serializers: the cart with lines and totals out; product/quantity in."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from monolith.cart.selectors import CartTotals
from monolith.cart.services import MAX_LINE_QUANTITY
from servicekit.ids import MAX_ID


class CartLineOutputSerializer(serializers.Serializer):
    product = serializers.IntegerField(source="product_id")
    sku = serializers.CharField(source="product.sku")
    name = serializers.CharField(source="product.name")
    quantity = serializers.IntegerField()
    unit_price = serializers.DecimalField(max_digits=12, decimal_places=2)
    current_price = serializers.DecimalField(source="product.price", max_digits=12, decimal_places=2)
    line_total = serializers.DecimalField(max_digits=14, decimal_places=2)


class CartOutputSerializer(serializers.Serializer):
    """The shape cart_body answers (for the schema)."""

    lines = CartLineOutputSerializer(many=True)
    item_count = serializers.IntegerField()
    subtotal = serializers.DecimalField(max_digits=14, decimal_places=2)
    currency = serializers.CharField()


def cart_body(totals: CartTotals) -> dict:
    return {
        "lines": CartLineOutputSerializer(totals.lines, many=True).data,
        "item_count": totals.item_count,
        "subtotal": f"{totals.subtotal:.2f}",
        "currency": totals.currency,
    }


# Any JSON value goes through to cart.services, which checks types and ranges (one place for the "1..99, whole
# number" rules and their messages); the schema states those rules for clients.
@extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_ID})
class CartProductField(serializers.JSONField):
    pass


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_LINE_QUANTITY})
class CartQuantityField(serializers.JSONField):
    pass


class CartItemAddInputSerializer(serializers.Serializer):
    product = CartProductField()
    quantity = CartQuantityField(required=False, default=1)


class CartItemUpdateInputSerializer(serializers.Serializer):
    quantity = CartQuantityField()
