"""Orders API serializers: the order (lines, address snapshot, payments) out; checkout input in."""

from __future__ import annotations

from rest_framework import serializers

from monolith.accounts.serializers import CountryField
from monolith.orders.services import IDEMPOTENCY_KEY_PATTERN
from servicekit.ids import IdField


class OrderLineOutputSerializer(serializers.Serializer):
    product = serializers.IntegerField(source="product_id", allow_null=True)
    sku = serializers.CharField()
    name = serializers.CharField()
    unit_price = serializers.DecimalField(max_digits=12, decimal_places=2)
    quantity = serializers.IntegerField()
    line_total = serializers.DecimalField(max_digits=14, decimal_places=2)


class PaymentOutputSerializer(serializers.Serializer):
    kind = serializers.CharField()
    status = serializers.CharField()
    amount = serializers.DecimalField(max_digits=14, decimal_places=2)
    currency = serializers.CharField()
    card_last4 = serializers.CharField()
    error_code = serializers.CharField()
    created_at = serializers.DateTimeField()


class ShippingAddressSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    line1 = serializers.CharField(max_length=200)
    line2 = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    city = serializers.CharField(max_length=120)
    postal_code = serializers.CharField(max_length=20)
    country = CountryField()


class OrderOutputSerializer(serializers.Serializer):
    reference = serializers.CharField()
    status = serializers.CharField()
    currency = serializers.CharField()
    subtotal = serializers.DecimalField(max_digits=14, decimal_places=2)
    shipping_total = serializers.DecimalField(max_digits=14, decimal_places=2)
    total = serializers.DecimalField(max_digits=14, decimal_places=2)
    shipping_address = serializers.SerializerMethodField()
    lines = OrderLineOutputSerializer(many=True)
    payments = PaymentOutputSerializer(many=True)
    failure_code = serializers.CharField()
    placed_at = serializers.DateTimeField()
    paid_at = serializers.DateTimeField()
    shipped_at = serializers.DateTimeField()
    delivered_at = serializers.DateTimeField()
    cancelled_at = serializers.DateTimeField()

    def get_shipping_address(self, order) -> dict:
        return {
            "name": order.ship_name,
            "line1": order.ship_line1,
            "line2": order.ship_line2,
            "city": order.ship_city,
            "postal_code": order.ship_postal_code,
            "country": order.ship_country,
        }


class OrderPlaceInputSerializer(serializers.Serializer):
    openapi_rules = {"not": {"required": ["address", "shipping_address"]}}  # validate() below (servicekit.openapi)

    address = IdField(required=False, help_text="id of one of your saved addresses")
    shipping_address = ShippingAddressSerializer(required=False, help_text="or an address for this order only")
    # payments.base.card_number_clean: 12-19 digits, spaces and dashes allowed; its Luhn check no schema can state
    card_number = serializers.RegexField(
        r"^[\s-]*(?:[0-9][\s-]*){12,19}$", max_length=32, help_text="12-19 digits passing the Luhn check"
    )
    expected_total = serializers.DecimalField(
        max_digits=14, decimal_places=2, required=False, allow_null=True,
        help_text="the total the customer confirmed; 409 price_changed when the cart no longer matches it",
    )
    idempotency_key = serializers.RegexField(
        IDEMPOTENCY_KEY_PATTERN, required=False, help_text="or the Idempotency-Key header (one of them is required)"
    )

    def validate(self, attrs):
        if "address" in attrs and "shipping_address" in attrs:
            raise serializers.ValidationError("Give address or shipping_address, not both.")
        return attrs
