"""Inventory API serializers: the monolith's shapes (stock rows out, stock counts and reservation requests in)."""

from __future__ import annotations

from rest_framework import serializers

from servicekit.ids import MAX_COUNT, IdField, IdListField


class StockOutputSerializer(serializers.Serializer):
    product = serializers.IntegerField(source="product_id")
    quantity_on_hand = serializers.IntegerField()
    quantity_reserved = serializers.IntegerField()
    quantity_available = serializers.IntegerField()


class StockFilterSerializer(serializers.Serializer):
    product = IdListField(max_length=500, required=False, help_text="comma-separated product ids (1 to 500)")


class StockSetInputSerializer(serializers.Serializer):
    quantity_on_hand = serializers.IntegerField(min_value=0, max_value=MAX_COUNT)


class ReservationLineInputSerializer(serializers.Serializer):
    product = IdField()
    quantity = serializers.IntegerField(min_value=1, max_value=MAX_COUNT)


class ReservationInputSerializer(serializers.Serializer):
    reference = serializers.CharField(max_length=64)
    lines = ReservationLineInputSerializer(many=True, allow_empty=False)


class ReservationLineOutputSerializer(serializers.Serializer):
    product = serializers.IntegerField(source="product_id")
    quantity = serializers.IntegerField()
    status = serializers.CharField()


class ReservationOutputSerializer(serializers.Serializer):
    """The shape reservation_body answers (for the schema)."""

    reference = serializers.CharField()
    lines = ReservationLineOutputSerializer(many=True)


def reservation_body(reference: str, reservations) -> dict:
    return {"reference": reference, "lines": ReservationLineOutputSerializer(reservations, many=True).data}
