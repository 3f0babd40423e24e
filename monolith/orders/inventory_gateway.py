"""Client of the inventory service's reservation API, used by checkout once the service owns stock.

Every call has a short timeout (``INVENTORY_SERVICE["TIMEOUT"]``) and goes through one circuit breaker
per service URL: after ``BREAKER_FAILURES`` consecutive failures (connection refused, timeout, 5xx) it
opens and calls fail at once with 503 ``inventory_unavailable`` without touching the network; after
``BREAKER_COOLDOWN`` seconds one probe call is let through (half-open), and its outcome closes or re-opens
it. 4xx answers are the service working as designed (out of stock, unknown reference): they count as
successes and come back as the same domain errors the local inventory raises.

Every operation is idempotent by the order reference on the service side, so retrying any of them is safe.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests
from django.conf import settings
from prometheus_client import Counter, Gauge

from monolith.inventory.errors import OutOfStock
from servicekit.errors import Conflict, DomainError, NotFound, Unavailable
from servicekit.request_id import HEADER as REQUEST_ID_HEADER
from servicekit.request_id import get_request_id

DEFAULTS: dict[str, Any] = {
    "URL": "http://127.0.0.1:8002",
    "TOKEN": "",
    "TIMEOUT": 2.0,
    "BREAKER_FAILURES": 5,
    "BREAKER_COOLDOWN": 10.0,
}

CALLS = Counter("monolith_inventory_calls_total", "Calls to the inventory service", ["operation", "outcome"])
BREAKER_STATE = Gauge("monolith_inventory_breaker_state", "Inventory breaker: 0 closed, 1 half-open, 2 open", ["url"])


class InventoryUnavailable(Unavailable):
    """The inventory service did not answer in time, refused the connection, failed, or its breaker is open."""

    code = "inventory_unavailable"


def inventory_service_setting(name: str):
    if name not in DEFAULTS:
        raise KeyError(f"unknown INVENTORY_SERVICE setting {name!r}")
    return (getattr(settings, "INVENTORY_SERVICE", {}) or {}).get(name, DEFAULTS[name])


class CircuitBreaker:
    CLOSED, HALF_OPEN, OPEN = "closed", "half_open", "open"

    def __init__(self, *, failures: int, cooldown: float, clock=time.monotonic):
        self.threshold = max(1, failures)
        self.cooldown = cooldown
        self.clock = clock
        self.state = self.CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self._lock = threading.Lock()

    def allow(self) -> bool:
        """May a call go out now? In half-open state only the one probe may."""
        with self._lock:
            if self.state == self.CLOSED:
                return True
            if self.state == self.OPEN and self.clock() - self.opened_at >= self.cooldown:
                self.state = self.HALF_OPEN  # this caller is the probe; others keep failing fast
                return True
            return False

    def record_success(self) -> None:
        with self._lock:
            self.state, self.failures = self.CLOSED, 0

    def record_failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self.state == self.HALF_OPEN or self.failures >= self.threshold:
                self.state, self.opened_at = self.OPEN, self.clock()

    @property
    def gauge_value(self) -> int:
        return {self.CLOSED: 0, self.HALF_OPEN: 1, self.OPEN: 2}[self.state]


_breakers: dict[tuple, CircuitBreaker] = {}
_breakers_lock = threading.Lock()


def inventory_breaker() -> CircuitBreaker:
    """This process's breaker for the configured service (a settings change gets a fresh one)."""
    key = tuple(inventory_service_setting(n) for n in ("URL", "BREAKER_FAILURES", "BREAKER_COOLDOWN"))
    with _breakers_lock:
        breaker = _breakers.get(key)
        if breaker is None:
            breaker = _breakers[key] = CircuitBreaker(failures=key[1], cooldown=key[2])
        return breaker


def inventory_breakers_reset() -> None:
    """Forget every breaker's state (tests)."""
    with _breakers_lock:
        _breakers.clear()


@dataclass(frozen=True)
class ReservationLine:
    product_id: int
    quantity: int
    status: str


def _lines(body: dict) -> list[ReservationLine]:
    return [ReservationLine(product_id=int(line["product"]), quantity=int(line["quantity"]), status=line["status"])
            for line in body.get("lines", [])]


def _error_from(response: requests.Response) -> DomainError:
    """The service's 4xx answer as the domain error the local inventory would have raised."""
    try:
        error = response.json()["error"]
        code, message, details = error["code"], error["message"], error.get("details") or {}
    except (ValueError, KeyError, TypeError):
        code, message, details = "inventory_error", f"The inventory service answered {response.status_code}.", {}
    if code == OutOfStock.code:
        return OutOfStock(message, details=details)
    if response.status_code == 404:
        return NotFound(message, details=details)
    if response.status_code == 409:
        exc = Conflict(message, details=details)
        exc.code = code  # keep the service's code (e.g. already confirmed / released)
        return exc
    return InventoryUnavailable(f"The inventory service refused the request: {message}",
                                details={"status": response.status_code, "code": code})


def _call(operation: str, method: str, path: str, *, json: dict | None = None) -> dict:
    breaker = inventory_breaker()
    url = inventory_service_setting("URL").rstrip("/")
    if not breaker.allow():
        CALLS.labels(operation, "breaker_open").inc()
        raise InventoryUnavailable("The inventory service is unavailable; please try again in a moment.",
                                   details={"reason": "breaker_open"})
    headers = {"Accept": "application/json"}
    if token := inventory_service_setting("TOKEN"):
        headers["Authorization"] = f"Bearer {token}"
    if request_id := get_request_id():
        headers[REQUEST_ID_HEADER] = request_id
    timeout = float(inventory_service_setting("TIMEOUT"))
    try:
        response = requests.request(method, f"{url}{path}", json=json, headers=headers, timeout=(timeout, timeout))
    except requests.Timeout:
        outcome, reason = "timeout", "timeout"
    except requests.RequestException as exc:
        outcome, reason = "unreachable", type(exc).__name__
    else:
        if response.status_code < 500:
            breaker.record_success()
            BREAKER_STATE.labels(url).set(breaker.gauge_value)
            if response.status_code < 300:
                CALLS.labels(operation, "ok").inc()
                return response.json()
            CALLS.labels(operation, "refused").inc()
            raise _error_from(response)
        outcome, reason = "server_error", f"HTTP {response.status_code}"
    breaker.record_failure()
    BREAKER_STATE.labels(url).set(breaker.gauge_value)
    CALLS.labels(operation, outcome).inc()
    raise InventoryUnavailable("The inventory service is unavailable; please try again in a moment.",
                               details={"reason": reason})


def inventory_reserve(*, reference: str, lines: list[tuple[int, int]]) -> list[ReservationLine]:
    """Reserve every line or none (OutOfStock names the short products). A repeat returns the first answer."""
    body = {"reference": reference, "lines": [{"product": pid, "quantity": qty} for pid, qty in lines]}
    return _lines(_call("reserve", "POST", "/api/reservations/", json=body))


def inventory_confirm(*, reference: str) -> list[ReservationLine]:
    return _lines(_call("confirm", "POST", f"/api/reservations/{quote(reference, safe='')}/confirm/"))


def inventory_release(*, reference: str) -> list[ReservationLine]:
    return _lines(_call("release", "POST", f"/api/reservations/{quote(reference, safe='')}/release/"))


def inventory_return(*, reference: str) -> list[ReservationLine]:
    """Undo the reservation whatever happened to it (released if active, back on hand if confirmed).

    The compensation when a confirm's outcome is unknown. A reference the service never saw is fine
    (the reserve never arrived): nothing to undo.
    """
    try:
        return _lines(_call("return", "POST", f"/api/reservations/{quote(reference, safe='')}/return/"))
    except NotFound:
        return []
