"""Coverage: does the service implement every path + method the monolith serves that a route sends to it?

Checked before a step that sends requests to a service (gate ``coverage``): the monolith's endpoints come
from its OpenAPI schema and from recorded traffic (``strangler_proxy.recording`` output, exchanges the
monolith answered), the service's from its own schema. Which requests a route table sends to a service is
strangler_proxy's own routing decision (``route_targets``), on the route file as the step will leave it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

from migrations_plan.metrics import MetricsUnavailable
from migrations_plan.route_targets import request_service
from migrations_plan.routefile import edit_route
from migrations_plan.spec import RouteEdit, Step
from strangler_proxy.loader import parse_route_text
from strangler_proxy.recording import read_recording
from strangler_proxy.routing import PathRejected, normalize_path
from strangler_proxy.spec import RouteTable

SCHEMA_METHODS = ("GET", "PUT", "POST", "DELETE", "PATCH")  # OpenAPI operations a service must answer
NOT_SERVED = frozenset({404, 405, 501})  # recorded answers meaning the monolith has no such endpoint
_PARAM = re.compile(r"\{[^}/]+\}")


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # a schema template (/api/products/{id}/) or a recorded path
    source: str  # "schema" or "recorded"

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({self.source})"


def table_after_step(table: RouteTable, step: Step | None) -> RouteTable:
    """The route table as the step's route edits will leave it (the table itself when it edits no route)."""
    edits = [a for a in step.actions if isinstance(a, RouteEdit)] if step is not None else []
    if not edits:
        return table
    text = Path(table.source).read_text(encoding="utf-8")
    for edit in edits:
        text = edit_route(text, edit.prefix, dict(edit.changes), source=table.source)
    return parse_route_text(text, source=table.source)


def schema_fetch(*, url: str, timeout: float = 30.0) -> dict:
    """An OpenAPI document (JSON or YAML); MetricsUnavailable when it cannot be read."""
    try:
        response = requests.get(url, params={"format": "json"}, timeout=timeout)
    except requests.RequestException as exc:
        raise MetricsUnavailable(f"{url}: {type(exc).__name__}") from exc
    if response.status_code != 200:
        raise MetricsUnavailable(f"{url} answered {response.status_code}")
    try:
        document = yaml.safe_load(response.text)  # JSON is YAML
    except yaml.YAMLError as exc:
        raise MetricsUnavailable(f"{url}: not an OpenAPI document ({type(exc).__name__})") from exc
    if not isinstance(document, dict) or not isinstance(document.get("paths"), dict):
        raise MetricsUnavailable(f"{url}: not an OpenAPI document (no paths)")
    return document


def schema_endpoints(document: dict) -> list[Endpoint]:
    return [Endpoint(method.upper(), path, "schema") for path, operations in document["paths"].items()
            if isinstance(operations, dict) for method in operations if method.upper() in SCHEMA_METHODS]


def recorded_endpoints(*, path: Path, monolith: str) -> list[Endpoint]:
    """Distinct (method, path) the monolith answered in a recording (query strings dropped)."""
    seen: dict[tuple[str, str], Endpoint] = {}
    for record in read_recording(path):
        if record.get("upstream") != monolith or record.get("status") in NOT_SERVED or record.get("status") is None:
            continue
        try:
            target = normalize_path(str(record.get("path") or ""))
        except PathRejected:
            continue
        key = (str(record.get("method", "")).upper(), target)
        seen.setdefault(key, Endpoint(key[0], key[1], "recorded"))
    return list(seen.values())


def _example(template: str) -> str:
    """A concrete path of a schema template, for the routing decision (`{id}` is one path segment)."""
    return _PARAM.sub("1", template)


def _template_pattern(template: str) -> re.Pattern:
    return re.compile("^" + "[^/]+".join(re.escape(part) for part in _PARAM.split(template)) + "$")


def coverage_missing(*, table: RouteTable, service: str, monolith: list[Endpoint], implemented: list[Endpoint]
                     ) -> tuple[list[Endpoint], int]:
    """(monolith endpoints the table sends to `service` that it does not implement, how many it sends)."""
    patterns = [(e.method, _template_pattern(e.path)) for e in implemented]
    missing, sent = [], 0
    for endpoint in monolith:
        concrete = _example(endpoint.path) if endpoint.source == "schema" else endpoint.path
        if request_service(table, method=endpoint.method, path=concrete) != service:
            continue
        sent += 1
        # Django answers HEAD with the GET view and DRF answers OPTIONS on any path it has: no schema lists them.
        wanted = {"HEAD": {"GET"}, "OPTIONS": set(SCHEMA_METHODS)}.get(endpoint.method, {endpoint.method})
        if not any(method in wanted and pattern.match(concrete) for method, pattern in patterns):
            missing.append(endpoint)
    return missing, sent
