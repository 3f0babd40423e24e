"""Waiting for what another thread or process does: poll a condition until one generous deadline.

CI runs the suite on a shared, busy 2-core box where a child process may get no CPU for seconds, so a
deadline is never what a test measures: it only bounds how long a broken test hangs. A condition that
holds returns at once, whatever the deadline. ``STRANGLER_TEST_WAIT`` (seconds) changes the default.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# Seconds a test waits for another thread or process (a server to answer, a consumer to apply, a log line).
WAIT_TIMEOUT = float(os.environ.get("STRANGLER_TEST_WAIT", "60"))
# Seconds one HTTP request from a test to a local server may take on that box.
REQUEST_TIMEOUT = 30.0


def wait_until(predicate: Callable[[], T], *, timeout: float = WAIT_TIMEOUT, interval: float = 0.05,
               what: str | Callable[[], str] = "condition") -> T:
    """Return the predicate's first truthy value; AssertionError naming ``what`` after ``timeout`` seconds.

    ``what`` may be a callable, to describe the state seen at the deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:g}s waiting for {described} (last: {value!r})")
        time.sleep(interval)
