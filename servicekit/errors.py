"""Domain errors raised by services, and the DRF exception handler that turns every error into one JSON shape.

Every API error body is ``{"error": {"code": str, "message": str, "details": {...}}}`` so clients (and
the proxy's diffing) see the same shape from the monolith and from every extracted service.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class DomainError(Exception):
    """A business rule refused the operation. Subclasses set code and status_code."""

    code = "domain_error"
    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, message: str, *, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}


class NotFound(DomainError):
    code = "not_found"
    status_code = status.HTTP_404_NOT_FOUND


class Conflict(DomainError):
    code = "conflict"
    status_code = status.HTTP_409_CONFLICT


class InvalidInput(DomainError):
    code = "invalid"
    status_code = status.HTTP_400_BAD_REQUEST


class Unavailable(DomainError):
    code = "unavailable"
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.DictField()


class ErrorSerializer(serializers.Serializer):
    """Every error answer: a machine-readable code, a message for people, details (e.g. per field)."""

    error = ErrorDetailSerializer()


_DRF_CODES = {
    exceptions.ParseError: "malformed_request",
    exceptions.ValidationError: "invalid",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
}


def api_exception_handler(exc, context):
    """DRF EXCEPTION_HANDLER: domain errors and DRF errors into the one error shape."""
    if isinstance(exc, DomainError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        details = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return Response(error_body("invalid", "Invalid input.", details), status=400)
    if isinstance(exc, OverflowError | DataError):
        # A number too large for its column got past the edge's checks (servicekit.ids bounds ids): SQLite
        # raises OverflowError, PostgreSQL a DataError ("bigint out of range"). The input is at fault, not us.
        return Response(error_body("invalid", "A value is out of range."), status=400)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, exceptions.ValidationError):
        details = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        if _only_unknown_references(exc.detail):
            # Well-formed, but a body's id names no row: 404 as for an unknown id in the path (the schema says so).
            response.status_code = status.HTTP_404_NOT_FOUND
            response.data = error_body("not_found", "Not found.", details)
            return response
        response.data = error_body(code, "Invalid input.", details)
    else:
        response.data = error_body(code, str(getattr(exc, "detail", exc)))
    return response


def _only_unknown_references(detail) -> bool:
    """True when every error in a ValidationError's detail is a related field's "does_not_exist"."""
    if isinstance(detail, dict):
        detail = list(detail.values())
    if isinstance(detail, list):
        return bool(detail) and all(_only_unknown_references(item) for item in detail)
    return getattr(detail, "code", None) == "does_not_exist"


def json_404(request, exception=None):
    """handler404 for API paths (HTML pages keep Django's page)."""
    return JsonResponse(error_body("not_found", "Not found."), status=404)


def json_500(request):
    return JsonResponse(error_body("server_error", "Internal server error."), status=500)


class ApiJsonErrorsMiddleware:
    """Under /api/, error responses that are not JSON (Django's 404/405/500 pages, DEBUG's technical 404) become
    the one JSON error shape, so clients and the proxy's diffing never see HTML from an API path."""

    _CODES = {
        400: "bad_request",
        403: "permission_denied",
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
        500: "server_error",
    }

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            response.status_code >= 400
            and request.path.startswith("/api/")
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            code = self._CODES.get(response.status_code, "error")
            message = "Not found." if code == "not_found" else code.replace("_", " ").capitalize() + "."
            replacement = JsonResponse(error_body(code, message), status=response.status_code)
            for header in ("Allow", "X-Request-ID"):
                if header in response:
                    replacement[header] = response[header]
            return replacement
        return response
