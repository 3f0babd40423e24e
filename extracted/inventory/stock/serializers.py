"""Inventory API serializers: the monolith's shapes (stock rows out, stock counts and reservation requests in)."""

from __future__ import annotations

from rest_framework import serializers


class StockOutputSerializer(serializers.Serializer):
    product = serializers.IntegerField(source="product_id")
    quantity_on_hand = serializers.IntegerField()
    quantity_reserved = serializers.IntegerField()
    quantity_available = serializers.IntegerField()


class StockSetInputSerializer(serializers.Serializer):
    quantity_on_hand = serializers.IntegerField(min_value=0)


class ReservationLineInputSerializer(serializers.Serializer):
    product = serializers.IntegerField(min_value=1)
    quantity = serializers.IntegerField(min_value=1)


class ReservationInputSerializer(serializers.Serializer):
    reference = serializers.CharField(max_length=64)
    lines = ReservationLineInputSerializer(many=True, allow_empty=False)


class ReservationLineOutputSerializer(serializers.Serializer):
    product = serializers.IntegerField(source="product_id")
    quantity = serializers.IntegerField()
    status = serializers.CharField()


def reservation_body(reference: str, reservations) -> dict:
    return {"reference": reference, "lines": ReservationLineOutputSerializer(reservations, many=True).data}
