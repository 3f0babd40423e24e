"""Read a project's relay state over HTTP: ``GET <base URL>/sync/relay/`` (strangler_sync's own endpoint).

The control plane needs only each project's base URL (an upstream of the route file, or a URL the plan or
the dashboard names): no project code, settings, database credentials or shared disk.
"""

from __future__ import annotations

import requests

from migrations_plan.metrics import MetricsUnavailable
from strangler_proxy.spec import RouteTable

RELAY_PATH = "/sync/relay/"
FIELDS = ("backlog", "oldest_pending_age_seconds", "outbox_dead", "dead_letters")


def sync_base_url(*, project: str, table: RouteTable) -> str:
    """An upstream name of the route file means that upstream's URL; anything else is a base URL already."""
    upstream = table.upstreams.get(project)
    return (upstream.url if upstream is not None else project).rstrip("/")


def sync_endpoint_get(*, base_url: str, path: str, timeout: float = 10.0) -> tuple[str, object]:
    """GET one of a project's /sync/ endpoints: (its URL, the decoded JSON); MetricsUnavailable when the project
    does not answer, answers another status than 200, or answers something that is not JSON."""
    url = base_url.rstrip("/") + path
    try:
        response = requests.get(url, timeout=timeout)
    except requests.RequestException as exc:
        raise MetricsUnavailable(f"{url}: {type(exc).__name__}") from exc
    if response.status_code != 200:
        raise MetricsUnavailable(f"{url} answered {response.status_code}")
    try:
        return url, response.json()
    except ValueError as exc:
        raise MetricsUnavailable(f"{url}: not JSON ({exc})") from exc


def relay_state_fetch(*, base_url: str, timeout: float = 10.0) -> dict:
    """The project's outbox numbers (FIELDS, plus its name and last dead letter); MetricsUnavailable otherwise."""
    url, data = sync_endpoint_get(base_url=base_url, path=RELAY_PATH, timeout=timeout)
    try:
        for name in FIELDS:
            if isinstance(data[name], bool) or not isinstance(data[name], int | float):
                raise TypeError(f"{name} is {data[name]!r}")
    except (KeyError, TypeError) as exc:
        raise MetricsUnavailable(f"{url}: not a relay state answer ({type(exc).__name__}: {exc})") from exc
    return data
