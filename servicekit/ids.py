"""Database ids at the API edge, bounded to what an id column holds, so a huge number never reaches the database.

An integer past 2**63-1 made SQLite raise OverflowError and PostgreSQL answer "bigint out of range": a 500 for
a typo. ``<id:name>`` in a URL pattern (registered when this module is imported, so URL modules import it first)
matches 0..2**63-1 and anything larger is the usual 404; ``IdField`` is the same bound for ids in query
parameters and bodies, also as a PrimaryKeyRelatedField's ``pk_field`` (a 400 naming the field);
``IdListField`` reads comma-separated ids.
"""

from __future__ import annotations

from django.urls import register_converter
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from rest_framework import serializers

MAX_ID = 2**63 - 1  # a bigint, PostgreSQL's and SQLite's largest integer
# Counters kept in an integer (int4) column, e.g. stock quantities: PostgreSQL refuses more than this.
MAX_COUNT = 2**31 - 1


class IdConverter:
    """``<id:product_id>``: Django's ``<int:...>`` without the overflow (a value past MAX_ID does not match)."""

    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > MAX_ID:
            raise ValueError(f"{value} is larger than any id")  # Django: no match, so a 404
        return number

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")


class IdField(serializers.IntegerField):
    """An id of a row: a whole number 1..MAX_ID (the schema says so too). Also the ``pk_field`` of a
    PrimaryKeyRelatedField, which calls only to_internal_value: so the bound is checked there."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> int:
        value = super().to_internal_value(data)
        self.run_validators(value)
        return value


class IdListField(serializers.Field):
    """Comma-separated ids in one query parameter (``?product=1,2,3``), 1..max_length of them. The schema states
    ids of up to 18 digits (a pattern cannot say "at most MAX_ID"): narrower than what is read, never wider."""

    default_error_messages = {
        "invalid": "Give comma-separated ids.",
        "length": "Give 1 to {max_length} ids.",
    }

    def __init__(self, *, max_length: int, **kwargs):
        self.max_length = max_length
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> list[int]:
        if not isinstance(data, str):
            self.fail("invalid")
        parts = [part.strip() for part in data.split(",") if part.strip()]
        if not parts or len(parts) > self.max_length:
            self.fail("length", max_length=self.max_length)
        if not all(part.isascii() and part.isdigit() for part in parts):
            self.fail("invalid")
        id_field = IdField()
        return [id_field.run_validation(part) for part in parts]

    def to_representation(self, value) -> str:
        return ",".join(str(item) for item in value)


class IdListFieldSchema(OpenApiSerializerFieldExtension):
    """The schema of an IdListField: 1..max_length ids of 1..18 digits (no leading zero), comma-separated."""

    target_class = IdListField

    def map_serializer_field(self, auto_schema, direction) -> dict:
        one_id = "[1-9][0-9]{0,17}"
        return {"type": "string", "pattern": f"^{one_id}(?:,{one_id}){{0,{self.target.max_length - 1}}}$"}
