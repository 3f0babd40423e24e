"""Review API shapes, the monolith's: the review resource, its input, list filters and the rating summary."""

from __future__ import annotations

from rest_framework import serializers

from servicekit.ids import IdField

from .models import RATING_MAX, RATING_MIN, Product, Review


# Product ids are the catalog's (a plain integer in the monolith's schema, not this table's int64 key).
class ReviewOutputSerializer(serializers.ModelSerializer):
    product = serializers.IntegerField(source="product_id", read_only=True)
    user = serializers.IntegerField(source="user_id", read_only=True)

    class Meta:
        model = Review
        fields = ["id", "product", "user", "username", "rating", "title", "body", "created_at", "updated_at"]
        read_only_fields = fields


class ReviewCreateSerializer(serializers.Serializer):
    product = serializers.PrimaryKeyRelatedField(queryset=Product.objects.all(), pk_field=IdField())
    rating = serializers.IntegerField(min_value=RATING_MIN, max_value=RATING_MAX)
    title = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    body = serializers.CharField(max_length=10_000, required=False, allow_blank=True, default="")


class ReviewUpdateSerializer(serializers.Serializer):
    rating = serializers.IntegerField(min_value=RATING_MIN, max_value=RATING_MAX, required=False)
    title = serializers.CharField(max_length=200, required=False, allow_blank=True)
    body = serializers.CharField(max_length=10_000, required=False, allow_blank=True)


class ReviewFilterSerializer(serializers.Serializer):
    product = IdField(required=False, help_text="Only reviews of this product.")


class RatingSummarySerializer(serializers.Serializer):
    product = serializers.IntegerField()
    average = serializers.DecimalField(max_digits=3, decimal_places=2, allow_null=True, coerce_to_string=True)
    count = serializers.IntegerField()
