"""Per-upstream circuit breaker: closed -> open after N consecutive failures -> one probe after a cooldown.

While a breaker is open, traffic routed to that upstream is not sent there at all: the addon serves safe
methods from the monolith and answers unsafe ones with a 503, so a dead service costs nothing per request.
After ``cooldown`` seconds one request (the probe) is let through (half-open); its success closes the
breaker, its failure opens it again for another cooldown.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


# Gauge values for the breaker state metric.
STATE_VALUES = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class CircuitBreaker:
    """Thread-safe; the mitmproxy event loop and the shadow/fallback workers all report to it."""

    def __init__(
        self, *, failure_threshold: int = 5, cooldown: float = 5.0, clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ):
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_started_at: float | None = None

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state

    def _set(self, state: BreakerState) -> None:
        changed = state is not self._state
        self._state = state
        if changed and self._on_change is not None:
            self._on_change(state)

    def allow(self) -> bool:
        """May a request go to this upstream now? In half-open state only the single probe may."""
        with self._lock:
            now = self._clock()
            if self._state is BreakerState.CLOSED:
                return True
            if self._state is BreakerState.OPEN:
                if now - self._opened_at < self.cooldown:
                    return False
                self._set(BreakerState.HALF_OPEN)
                self._probe_started_at = now
                return True
            # Half-open with a probe in flight. A probe that never reports (client went away) must not
            # wedge the breaker: after another cooldown the next request becomes the probe.
            if self._probe_started_at is not None and now - self._probe_started_at < self.cooldown:
                return False
            self._probe_started_at = now
            return True

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._probe_started_at = None
            self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._state is BreakerState.HALF_OPEN or self._failures >= self.failure_threshold:
                self._opened_at = self._clock()
                self._probe_started_at = None
                self._set(BreakerState.OPEN)


class BreakerBoard:
    """One breaker per upstream name, created on first use with the board's settings."""

    def __init__(
        self, *, failure_threshold: int = 5, cooldown: float = 5.0, clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, BreakerState], None] | None = None,
    ):
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, upstream: str) -> CircuitBreaker:
        with self._lock:
            breaker = self._breakers.get(upstream)
            if breaker is None:
                notify = None
                if self._on_change is not None:
                    callback = self._on_change

                    def notify(state: BreakerState, _name: str = upstream) -> None:
                        callback(_name, state)

                breaker = CircuitBreaker(
                    failure_threshold=self.failure_threshold, cooldown=self.cooldown, clock=self._clock,
                    on_change=notify,
                )
                self._breakers[upstream] = breaker
            return breaker

    def states(self) -> dict[str, str]:
        with self._lock:
            items = list(self._breakers.items())
        return {name: breaker.state.value for name, breaker in items}
