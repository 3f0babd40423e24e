"""Correlation ids: read or create X-Request-ID, expose it to logs and put it on the response."""

from __future__ import annotations

import contextvars
import logging
import re
import uuid

HEADER = "X-Request-ID"
META_KEY = "HTTP_X_REQUEST_ID"
# Accept what proxies commonly generate (uuid, hex, base64-ish); anything else is replaced, so a
# client cannot inject newlines or huge values into our logs.
_VALID = re.compile(r"^[A-Za-z0-9._:+/=-]{1,128}$")

current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex


def clean_request_id(value: str | None) -> str:
    if value and _VALID.match(value):
        return value
    return new_request_id()


def get_request_id() -> str | None:
    return current_request_id.get()


class RequestIdMiddleware:
    """Sets request.request_id and the context var for the duration of the request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = clean_request_id(request.META.get(META_KEY))
        request.request_id = request_id
        token = current_request_id.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            current_request_id.reset(token)
        response[HEADER] = request_id
        return response


class RequestIdLogFilter(logging.Filter):
    """Adds request_id to every log record (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id.get()
        return True
