"""The OpenAPI schema class every project uses: drf-spectacular's, plus the error answers each operation can give.

A view documents its success answers (and any error particular to it, e.g. 402 on checkout) with
``extend_schema``; the errors every API shares come from here, in the one error shape (servicekit.errors), so the
published schema lists what clients really get back:

- 400 where a body or a query parameter is read (malformed or too deeply nested JSON, invalid fields);
- 401 when the first authenticator challenges (Basic first), 403 always (a bad credential is refused anywhere,
  a permission or CSRF check can refuse);
- 404 where the path or the body names something, and on paginated lists (a page past the end);
- 409 on writes (a conflict, or a write to an aggregate this project does not own), 415 where a body is read.
"""

from __future__ import annotations

from drf_spectacular import openapi

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


def public_api_only(endpoints: list[tuple], **kwargs) -> list[tuple]:
    """drf-spectacular PREPROCESSING_HOOKS entry: the schema documents the public API (/api/...), not the ops or
    sync endpoints (those are the toolkit's, for operators)."""
    return [endpoint for endpoint in endpoints if endpoint[0].startswith("/api/")]
