"""Catalog API shapes, copied from the monolith (tests/extracted/catalog/test_contract.py keeps them equal)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rest_framework import serializers

from servicekit.ids import IdField

from .models import Category, Product
from .selectors import DEFAULT_PRODUCT_ORDERING, PRODUCT_ORDERINGS
from .services import SKU_PATTERN, SLUG_PATTERN


class CategoryOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Category
        fields = ["id", "name", "slug", "parent", "description", "created_at", "updated_at"]
        read_only_fields = fields


class CategoryInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    slug = serializers.RegexField(SLUG_PATTERN, max_length=140, required=False)
    parent = serializers.PrimaryKeyRelatedField(
        queryset=Category.objects.all(), pk_field=IdField(), allow_null=True, required=False
    )
    description = serializers.CharField(allow_blank=True, required=False)


class ProductOutputSerializer(serializers.ModelSerializer):
    price = serializers.DecimalField(max_digits=12, decimal_places=2, coerce_to_string=True)
    images = serializers.ListField(child=serializers.CharField())
    category_slug = serializers.CharField(source="category.slug", allow_null=True, read_only=True)

    class Meta:
        model = Product
        fields = [
            "id", "sku", "slug", "name", "description", "price", "currency", "is_active", "images",
            "category", "category_slug", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields


# What the services accept as an image, narrowed to what a pattern can state: a site path, or an http(s) URL with
# a dotted host name (Django's URLValidator, which the services run, also takes IPs, ports and localhost).
_LABEL = "[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
IMAGE_PATTERN = rf"^(?:/[^\u0000]*|https?://{_LABEL}(?:\.{_LABEL})*\.[a-z]{{2,63}}(?:/[A-Za-z0-9._~%/-]*)?)$"


class ProductInputSerializer(serializers.Serializer):
    """Body of POST/PUT (all required fields) and PATCH (partial=True)."""

    sku = serializers.RegexField(SKU_PATTERN, max_length=64)
    slug = serializers.RegexField(SLUG_PATTERN, max_length=200, required=False)
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(allow_blank=True, required=False, default="")
    price = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=Decimal("0"))
    currency = serializers.RegexField(r"^[A-Z]{3}$", required=False)
    is_active = serializers.BooleanField(required=False, default=True)
    images = serializers.ListField(
        child=serializers.RegexField(IMAGE_PATTERN, max_length=500), required=False, default=list
    )
    category = serializers.PrimaryKeyRelatedField(
        queryset=Category.objects.all(), pk_field=IdField(), allow_null=True, required=False, default=None
    )


class ProductFilterSerializer(serializers.Serializer):
    """Query parameters of GET /api/products/ (and of the product list pages)."""

    category = serializers.SlugField(required=False, help_text="Category slug; includes its subcategories.")
    min_price = serializers.DecimalField(
        max_digits=12, decimal_places=2, min_value=Decimal("0"), required=False, help_text="At most max_price."
    )
    max_price = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=Decimal("0"), required=False)
    q = serializers.CharField(max_length=200, required=False, allow_blank=True, help_text="Search name, SKU, text.")
    ordering = serializers.ChoiceField(choices=list(PRODUCT_ORDERINGS), required=False)
    is_active = serializers.ChoiceField(
        choices=["true", "false", "all"], required=False, help_text="Staff only; others always see active products."
    )

    def selector_kwargs(self, *, staff: bool) -> dict[str, Any]:
        """Keyword arguments for selectors.product_list from the validated parameters."""
        data = self.validated_data
        is_active: bool | None = True
        if staff:
            is_active = {"true": True, "false": False, "all": None}[data.get("is_active", "all")]
        return {
            "category": data.get("category") or None,
            "min_price": data.get("min_price"),
            "max_price": data.get("max_price"),
            "q": data.get("q") or None,
            "is_active": is_active,
            "ordering": data.get("ordering") or DEFAULT_PRODUCT_ORDERING,
        }
