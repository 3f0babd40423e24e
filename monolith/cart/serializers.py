"""Cart API serializers: the cart with lines and totals out; product/quantity in."""

from __future__ import annotations

from rest_framework import serializers

from monolith.cart.selectors import CartTotals


class CartLineOutputSerializer(serializers.Serializer):
    product = serializers.IntegerField(source="product_id")
    sku = serializers.CharField(source="product.sku")
    name = serializers.CharField(source="product.name")
    quantity = serializers.IntegerField()
    unit_price = serializers.DecimalField(max_digits=12, decimal_places=2)
    current_price = serializers.DecimalField(source="product.price", max_digits=12, decimal_places=2)
    line_total = serializers.DecimalField(max_digits=14, decimal_places=2)


def cart_body(totals: CartTotals) -> dict:
    return {
        "lines": CartLineOutputSerializer(totals.lines, many=True).data,
        "item_count": totals.item_count,
        "subtotal": f"{totals.subtotal:.2f}",
        "currency": totals.currency,
    }


class CartItemAddInputSerializer(serializers.Serializer):
    # Types are checked by cart.services (one place for "1..99, whole number" rules and messages).
    product = serializers.JSONField()
    quantity = serializers.JSONField(required=False, default=1)


class CartItemUpdateInputSerializer(serializers.Serializer):
    quantity = serializers.JSONField()
