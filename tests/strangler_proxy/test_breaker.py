"""breaker: closed -> open after N consecutive failures -> half-open single probe after cooldown -> closed."""

from __future__ import annotations

import pytest

from strangler_proxy.breaker import BreakerBoard, BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_only():
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, cooldown=5, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # resets the streak
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()


def test_half_open_lets_exactly_one_probe_through_after_cooldown():
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown=5, clock=clock)
    breaker.record_failure()
    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.allow()  # the probe
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow()  # everybody else waits for the probe
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow() and breaker.allow()


def test_failed_probe_reopens_for_a_full_cooldown():
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, cooldown=5, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.now += 5
    assert breaker.allow()
    breaker.record_failure()  # one failure is enough in half-open
    assert breaker.state is BreakerState.OPEN
    clock.now += 4
    assert not breaker.allow()
    clock.now += 1
    assert breaker.allow()


def test_a_probe_that_never_reports_does_not_wedge_the_breaker():
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown=2, clock=clock)
    breaker.record_failure()
    clock.now += 2
    assert breaker.allow()
    clock.now += 1
    assert not breaker.allow()
    clock.now += 1
    assert breaker.allow()  # the lost probe is replaced


def test_board_keeps_one_breaker_per_upstream_and_reports_changes():
    changes = []
    board = BreakerBoard(failure_threshold=1, cooldown=1, clock=FakeClock(),
                         on_change=lambda name, state: changes.append((name, state)))
    assert board.get("catalog") is board.get("catalog")
    board.get("catalog").record_failure()
    assert board.states() == {"catalog": "open"}
    assert board.get("orders").allow()
    assert changes == [("catalog", BreakerState.OPEN)]


def test_threshold_must_be_positive():
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)
