"""Accounts API serializers: the current user and addresses."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


@extend_schema_field({"type": "string", "pattern": r"^[A-Za-z]{2}$", "description": "two-letter ISO country code"})
class CountryField(serializers.CharField):
    """Two letters: accounts.services upper-cases them and Address.country's validator checks them (its error
    names `country` wherever the address is nested); the schema states the same rule."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 2)
        super().__init__(**kwargs)


class MeOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.CharField()
    is_staff = serializers.BooleanField()


class AddressOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    line1 = serializers.CharField()
    line2 = serializers.CharField()
    city = serializers.CharField()
    postal_code = serializers.CharField()
    country = serializers.CharField()
    is_default = serializers.BooleanField()


class AddressInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    line1 = serializers.CharField(max_length=200)
    line2 = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    city = serializers.CharField(max_length=120)
    postal_code = serializers.CharField(max_length=20)
    country = CountryField()
    is_default = serializers.BooleanField(required=False, default=False)
