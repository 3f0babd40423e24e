"""Schemathesis against a project's published OpenAPI schema, in-process through the Django WSGI app.

Each project's test module loads its schema with ``load_schema()`` and runs ``check_case`` for every generated
case (positive and negative data): once anonymous and once with the credentials it passes. A case fails on any
5xx, on any answer the schema does not describe (status code, content type, body), and when a request the schema
calls valid is refused as bad input (400/422: the schema is looser than the code). Examples per operation are
bounded (and derandomized, so CI runs the same cases every time) to keep all four projects well under the CI
budget.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    positive_data_acceptance,
]
MAX_EXAMPLES = 8
HYPOTHESIS_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),  # function-scoped db fixtures are reset per test, not per example
)


def load_schema():
    from django.core.wsgi import get_wsgi_application

    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())


@contextmanager
def transaction_kept_open() -> Iterator[None]:
    """Requests through the real WSGI app close the database connection when they finish (Django's
    close_old_connections), which on PostgreSQL ends the test's transaction mid-test. Django's own test client
    disconnects that handler for its requests; this does the same around a test's cases."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def basic_auth(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def _luhn_completed(number: str) -> str:
    """The card number with its last digit replaced by the Luhn check digit of the others (separators kept)."""
    digits = [int(char) for char in number if char.isdigit()]
    total = 0
    for index, digit in enumerate(reversed(digits[:-1])):
        doubled = digit * 2 if index % 2 == 0 else digit
        total += doubled - 9 if doubled > 9 else doubled
    last = max(i for i, char in enumerate(number) if char.isdigit())
    return number[:last] + str((10 - total % 10) % 10) + number[last + 1 :]


def unstated_rules_kept(case) -> None:
    """Rules OpenAPI 3.0 cannot state (their parameters' descriptions do), kept in positive cases so the
    positive-data check judges the rest: min_price <= max_price, and a card number's Luhn check digit."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    query = case.query or {}
    try:
        if Decimal(query["min_price"]) > Decimal(query["max_price"]):
            query["min_price"], query["max_price"] = query["max_price"], query["min_price"]
    except (KeyError, TypeError, ArithmeticError):
        pass  # one of them absent, or not a number (then the schema did not call it valid)
    if isinstance(case.body, dict) and isinstance(case.body.get("card_number"), str):
        if any(char.isdigit() for char in case.body["card_number"]):
            case.body["card_number"] = _luhn_completed(case.body["card_number"])


def check_case(case, *, credentials: dict[str, str] | None) -> None:
    """Call the operation anonymously, then (when given) with these credential headers, and validate both."""
    unstated_rules_kept(case)
    # Generated credentials (from the schema's security schemes) are random: replace them with known ones.
    for name in ("Authorization", "Cookie"):
        case.headers.pop(name, None) if case.headers else None
    if case.cookies:
        case.cookies.clear()
    case.call_and_validate(checks=CHECKS)
    if credentials is not None:
        case.call_and_validate(checks=CHECKS, headers=credentials)
