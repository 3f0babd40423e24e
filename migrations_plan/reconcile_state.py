"""Read a project's reconciliation state over HTTP: ``GET <base URL>/sync/reconcile/`` (strangler_sync's endpoint,
written by ``manage.py sync_reconcile`` running in that project), for the ``max_reconcile_clean_age_seconds`` gate."""

from __future__ import annotations

from migrations_plan.metrics import MetricsUnavailable
from migrations_plan.relay_state import sync_endpoint_get

RECONCILE_PATH = "/sync/reconcile/"


def reconcile_state_fetch(*, base_url: str, timeout: float = 10.0) -> list[dict]:
    """Each (aggregate, follower) pair's last pass; MetricsUnavailable when the project does not answer one."""
    url, data = sync_endpoint_get(base_url=base_url, path=RECONCILE_PATH, timeout=timeout)
    try:
        passes = data["passes"]
        for entry in passes:
            for name in ("aggregate", "follower", "status", "differences"):
                entry[name]  # noqa: B018 (shape check)
            age = entry["last_clean_age_seconds"]
            if age is not None and (isinstance(age, bool) or not isinstance(age, int | float)):
                raise TypeError(f"last_clean_age_seconds is {age!r}")
    except (KeyError, TypeError) as exc:
        raise MetricsUnavailable(f"{url}: not a reconcile state answer ({type(exc).__name__}: {exc})") from exc
    return passes
