"""Typed, immutable specs of a plan file: steps, their actions and their gates."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migrations_plan.gate_sources import ProxyMetricsSource

# Keys a route action may set on a route of the route file (the rest of a route is never touched by plans).
# `methods` lets writes follow an ownership flip on a route that took only reads (null: every method).
# `hold` holds the route's writes at the proxy (an ownership flip's fence, strangler_proxy.hold).
ROUTE_KEYS: tuple[str, ...] = ("mode", "service", "weight", "shadow", "fallback", "timeout", "methods", "hold")

# Gate kinds. "min" gates wait until the value reaches the threshold; "max" gates fail when the value exceeds
# it; both are unknown while there is no data, and an unknown gate never passes.
GATE_KINDS: dict[str, str] = {
    "min_shadow_sample": "min",  # shadow comparisons on the plan's routes since the current step began
    "max_diff_rate": "max",  # shadow comparisons that differed / comparisons, 0..1
    "max_error_rate_increase": "max",  # service 5xx+failure rate minus the monolith's, 0..1
    "max_p99_seconds": "max",  # p99 latency of requests the service answered on the plan's routes
    "max_relay_lag_seconds": "max",  # age of the oldest unpublished outbox row, worst sync project
    "max_relay_backlog": "max",  # unpublished outbox rows, summed over the sync projects
    # age of the last sync_reconcile pass that found 0 differences, worst aggregate the sync projects reconcile
    # with the plan's service; fails while a latest pass found differences or failed
    "max_reconcile_clean_age_seconds": "max",
    "verify": "max",  # differences between monolith and service for these aggregates; must be 0
    "min_soak_seconds": "min",  # time since the current step began
    "healthy": "max",  # upstreams whose health path does not answer 200; must be 0
    # path + method pairs the monolith serves (OpenAPI schema, recorded traffic) that the route file, as this
    # step leaves it, sends to the plan's service and the service's schema lacks; must be 0
    "coverage": "max",
}
DEFAULT_SCHEMA_PATH = "/api/schema/"


@dataclass(frozen=True)
class RouteEdit:
    """Set keys of one route (None removes the key). Reversible: the previous values are kept for undo."""

    prefix: str
    changes: tuple[tuple[str, Any], ...]
    line: int = 0

    @property
    def reversible(self) -> bool:
        return True

    def describe(self) -> str:
        parts = ", ".join(f"{k}={'(unset)' if v is None else v}" for k, v in self.changes)
        return f"route {self.prefix}: {parts}"


@dataclass(frozen=True)
class OwnershipChange:
    """Make `owner` the writer of each aggregate. Not reversible: writes may already have happened there."""

    owners: tuple[tuple[str, str], ...]
    line: int = 0

    @property
    def reversible(self) -> bool:
        return False

    def describe(self) -> str:
        return "ownership " + ", ".join(f"{a}={o}" for a, o in self.owners)


@dataclass(frozen=True)
class CommandAction:
    """Run a command (argv, `{python}` = this interpreter) in the plan's workdir; exit 0 or the step fails.

    Commands are meant to be idempotent (backfill, verify, migrate): rolling back runs `undo` when given,
    and otherwise has nothing to undo.
    """

    argv: tuple[str, ...]
    undo: tuple[str, ...] | None = None
    timeout: float = 600.0
    line: int = 0

    @property
    def reversible(self) -> bool:
        return True

    def describe(self) -> str:
        return "run " + " ".join(self.argv)


Action = RouteEdit | OwnershipChange | CommandAction


@dataclass(frozen=True)
class Gate:
    kind: str  # a key of GATE_KINDS
    threshold: float  # for verify and healthy: 0
    aggregates: tuple[str, ...] = ()  # verify
    upstreams: tuple[str, ...] = ()  # healthy
    schema_path: str = DEFAULT_SCHEMA_PATH  # coverage: where both projects serve their OpenAPI schema
    recording: Path | None = None  # coverage: a proxy recording of the monolith's traffic (optional)
    line: int = 0

    @property
    def direction(self) -> str:
        return GATE_KINDS[self.kind]


@dataclass(frozen=True)
class Step:
    name: str
    description: str
    actions: tuple[Action, ...]
    gates: tuple[Gate, ...]  # must pass before this step is applied
    watch: tuple[Gate, ...] = ()  # checked by `plan watch` while this is the current step
    line: int = 0

    @property
    def reversible(self) -> bool:
        return all(action.reversible for action in self.actions)


@dataclass(frozen=True)
class Plan:
    name: str
    description: str
    service: str  # the upstream the plan moves traffic to
    routes: tuple[str, ...]  # route prefixes whose metrics feed the gates
    # the proxy admin's /metrics URL, a tuple of replicas' URLs, or a PrometheusSource (gate_sources.py)
    proxy_metrics: ProxyMetricsSource
    # Projects whose relay feeds the relay gates: upstream names of the route file, or base URLs. Each is read
    # over HTTP at <base URL>/sync/relay/ (strangler_sync's own endpoint), never by importing the project.
    sync_projects: tuple[str, ...]
    steps: tuple[Step, ...]
    source: Path = field(default_factory=Path)
    workdir: Path | None = None  # where `run` commands run (plan key `workdir`, relative to the plan file)
    settings: str | None = None  # Django settings module whose ownership file `ownership` actions change
    # the route file the plan was checked against and edits: --routes, else $STRANGLER_ROUTES, else the plan's
    # `route_file` (relative to the plan file), else the packaged one
    route_file: Path | None = None

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)
