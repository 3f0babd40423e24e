"""The OpenAPI schema class every project uses: drf-spectacular's, plus the error answers each operation can give.

A view documents its success answers (and any error particular to it, e.g. 402 on checkout) with
``extend_schema``; the errors every API shares come from here, in the one error shape (servicekit.errors), so the
published schema lists what clients really get back:

- 400 where a body or a query parameter is read (malformed or too deeply nested JSON, invalid fields);
- 401 when the first authenticator challenges (Basic first), 403 always (a bad credential is refused anywhere,
  a permission or CSRF check can refuse);
- 404 where the path or the body names something, and on paginated lists (a page past the end);
- 409 on writes (a conflict, or a write to an aggregate this project does not own), 415 where a body is read.

Request fields say what the serializers really accept, so a request the schema calls valid is never refused as
bad input (schemathesis checks it, tests/api_conformance.py): text fields refuse NUL and, when they
may not be blank, need one character that is not whitespace (DRF trims first); decimals need a digit and drop the
sign when they may not be negative; lists that may not be empty say so; a serializer may add rules across its
fields (``openapi_rules``); a PATCH body validated in full (not ``partial=True``) keeps its required fields. These
override drf-spectacular's private mapping methods (tests/monolith/test_openapi_schema.py notices when an upgrade
changes them).
"""

from __future__ import annotations

import re

from django.core.validators import RegexValidator
from drf_spectacular import openapi
from drf_spectacular.plumbing import force_instance, is_serializer
from rest_framework import serializers

from servicekit.errors import ErrorSerializer

_DESCRIPTIONS = {
    "400": "Invalid input (the details name the fields).",
    "401": "Not authenticated.",
    "403": "Authentication failed, or not allowed.",
    "404": "Not found.",
    "409": "Conflict with the current state (or not the owner of the data).",
    "415": "Unsupported media type.",
}
_BODY_METHODS = {"POST", "PUT", "PATCH"}
# DRF's CharField refuses NUL (and lone surrogates, which JSON text cannot carry unescaped and generators do not
# make; a pattern naming them is one Rust-based validators cannot compile) and trims before the blank check.
# Whitespace is spelled out: Python's str.strip() and ECMA's \s differ (U+001C-U+001F, U+0085 vs U+FEFF).
_SPACE = r"\u0009-\u000d\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_TEXT_PATTERN = r"^[^\u0000]*$"
_NON_BLANK_TEXT_PATTERN = rf"^[^\u0000]*[^\u0000{_SPACE}][^\u0000]*$"
_WRITE_METHODS = _BODY_METHODS | {"DELETE"}


class AutoSchema(openapi.AutoSchema):
    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        error_schema = self.resolve_serializer(ErrorSerializer(), "response").ref
        for code in self._error_codes(operation):
            operation["responses"].setdefault(
                code, {"description": _DESCRIPTIONS[code], "content": {"application/json": {"schema": error_schema}}}
            )
        return operation

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if direction != "request" or not isinstance(schema, dict):
            return schema
        if isinstance(field, serializers.CharField) and not ({"pattern", "format", "enum"} & schema.keys()):
            # a RegexValidator's pattern (RegexField, SlugField) is added after this and must not be shadowed
            if not any(isinstance(validator, RegexValidator) for validator in field.validators):
                blank_ok = field.allow_blank or not field.trim_whitespace
                schema["pattern"] = _TEXT_PATTERN if blank_ok else _NON_BLANK_TEXT_PATTERN
        elif isinstance(field, serializers.DecimalField) and schema.get("type") == "string":
            schema["pattern"] = _decimal_pattern(field)
        elif isinstance(field, serializers.ListSerializer | serializers.ListField):
            if not field.allow_empty:
                schema.setdefault("minItems", 1)
        return schema

    def _insert_field_validators(self, field, schema):
        super()._insert_field_validators(field, schema)
        # drf-spectacular offers "" as a second oneOf branch of a blank-allowed string with a pattern; when the
        # pattern already matches "", "" would match both branches and oneOf would call it invalid.
        branches = schema.get("oneOf")
        if branches and len(branches) == 2 and branches[1] == {"type": "string", "maxLength": 0}:
            if _admits_empty(branches[0]):
                schema.update(schema.pop("oneOf")[0])

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        if direction == "request":
            schema.update(getattr(serializer, "openapi_rules", {}))
        return schema

    def _get_request_for_media_type(self, serializer, direction="request"):
        # drf-spectacular publishes every PATCH body as partial; views here say partial=True where they mean it.
        if self.method == "PATCH" and is_serializer(serializer) and not force_instance(serializer).partial:
            self.method = "POST"
            try:
                return super()._get_request_for_media_type(serializer, direction)
            finally:
                self.method = "PATCH"
        return super()._get_request_for_media_type(serializer, direction)

    def _error_codes(self, operation: dict) -> list[str]:
        locations = {parameter.get("in") for parameter in operation.get("parameters", [])}
        names = {parameter.get("name") for parameter in operation.get("parameters", [])}
        codes = []
        if self.method in _BODY_METHODS or "query" in locations:
            codes.append("400")
        if self._first_authenticator_challenges():
            codes.append("401")
        codes.append("403")
        if "path" in locations or "page" in names or self.method in _BODY_METHODS:  # a body names other rows too
            codes.append("404")
        if self.method in _WRITE_METHODS:
            codes.append("409")
        if self.method in _BODY_METHODS:
            codes.append("415")
        return codes

    def _first_authenticator_challenges(self) -> bool:
        # DRF answers 401 only when the first authenticator sends a WWW-Authenticate challenge, else 403.
        authenticators = self.view.get_authenticators()
        return bool(authenticators) and bool(authenticators[0].authenticate_header(self.view.request))


def _admits_empty(schema: dict) -> bool:
    if schema.get("minLength", 0) > 0 or "format" in schema:
        return False
    return "pattern" not in schema or re.search(schema["pattern"], "") is not None


def _decimal_pattern(field: serializers.DecimalField) -> str:
    """What DecimalField reads: at least one digit (drf-spectacular's pattern also matches "" and "-"), no sign
    when the field's minimum is zero or more."""
    sign = "" if field.min_value is not None and field.min_value >= 0 else "-?"
    whole = "0" if field.max_whole_digits == 0 else f"[0-9]{{1,{field.max_whole_digits or 64}}}"
    fraction = rf"(?:\.[0-9]{{1,{field.decimal_places}}})?" if field.decimal_places else ""
    return f"^{sign}{whole}{fraction}$"


def public_api_only(endpoints: list[tuple], **kwargs) -> list[tuple]:
    """drf-spectacular PREPROCESSING_HOOKS entry: the schema documents the public API (/api/...), not the ops or
    sync endpoints (those are the toolkit's, for operators)."""
    return [endpoint for endpoint in endpoints if endpoint[0].startswith("/api/")]
