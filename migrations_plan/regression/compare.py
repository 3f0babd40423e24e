"""Send one request to the monolith and to a service and diff the answers under the route's rules.

The route, its diff rules and (by default) both base URLs come from the traffic plane's route file through
``strangler_proxy.loader``; the comparison itself is ``strangler_proxy.diffing`` (the one diff implementation),
including Diffy-style noise learning from a second monolith call.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from strangler_proxy.diffing import (
    DiffResult,
    HttpResponseData,
    NoiseRegistry,
    response_diff,
)
from strangler_proxy.fetch import UpstreamClient
from strangler_proxy.routing import normalize_path, route_match
from strangler_proxy.spec import SAFE_METHODS, DiffRules, Route, RouteTable

NO_ROUTE_LABEL = "default"


class SideBySideError(Exception):
    """The comparison could not be set up (unknown route, no base URL); str() is one line."""


@dataclass(frozen=True)
class Exchange:
    """One request sent to both sides and what came back."""

    method: str
    path: str
    route: str  # route label: the route's prefix, or "default" when no route claims the path
    monolith: HttpResponseData
    service: HttpResponseData
    result: DiffResult
    monolith_again: HttpResponseData | None = None

    @property
    def equal(self) -> bool:
        return self.result.equal


@dataclass
class SideBySide:
    """Compares both sides for requests on a route table; noise learned per route lives as long as this object."""

    table: RouteTable
    monolith_url: str
    service_url: str
    route_prefix: str | None = None  # pin the rules to this route instead of matching each path
    host: str | None = None  # Host header both sides get (as a proxy would forward it)
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = 30.0
    learn_noise: bool = True
    noise: NoiseRegistry = field(default_factory=NoiseRegistry)
    client: UpstreamClient = field(default_factory=UpstreamClient)

    def __post_init__(self) -> None:
        if self.route_prefix is not None:
            self._pinned = route_by_prefix(self.table, self.route_prefix)

    def route_for(self, method: str, path: str) -> Route | None:
        if self.route_prefix is not None:
            return self._pinned
        return route_match(self.table.routes, path=normalize_path(path), method=method)

    def fetch(self, base_url: str, method: str, path: str, headers: Iterable[tuple[str, str]] = (),
              body: bytes | None = None) -> HttpResponseData:
        return self.client.fetch(base_url=base_url, method=method, path=path,
                                 headers=[*self.headers, *headers], body=body, timeout=self.timeout,
                                 host_header=self.host)

    def compare(self, method: str, path: str, *, headers: Iterable[tuple[str, str]] = (),
                body: bytes | None = None) -> Exchange:
        """Send the request to both sides (and, for safe methods, to the monolith again to learn noise)."""
        method = method.upper()
        headers = tuple(headers)
        route = self.route_for(method, path)
        rules = route.diff if route is not None else DiffRules()
        label = route.label if route is not None else NO_ROUTE_LABEL
        monolith = self.fetch(self.monolith_url, method, path, headers, body)
        service = self.fetch(self.service_url, method, path, headers, body)
        again = None
        # Asking the monolith twice is only harmless when the request changes nothing.
        if self.learn_noise and rules.learn_noise and method in SAFE_METHODS:
            again = self.fetch(self.monolith_url, method, path, headers, body)
        result = response_diff(expected=monolith, actual=service, rules=rules, route=label, noise=self.noise,
                               expected_again=again)
        return Exchange(method, path, label, monolith, service, result, again)


def route_by_prefix(table: RouteTable, prefix: str) -> Route:
    """The route whose prefix (or exact path) is ``prefix``; unknown prefixes are an error, never the default."""
    for route in table.routes:
        if route.prefix == prefix:
            return route
    known = ", ".join(r.prefix for r in table.routes) or "none"
    raise SideBySideError(f"{table.source}: no route with prefix {prefix!r} (routes: {known})")


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)  # quoted strings: "10" and 10 must not look alike
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_difference(path: str, kind: str, expected: Any, actual: Any) -> str:
    """One line per field: where, and both values."""
    if kind == "missing":
        return f"{path}: only the monolith has it: {_short(expected)}"
    if kind == "added":
        return f"{path}: only the service has it: {_short(actual)}"
    return f"{path}: monolith {_short(expected)} != service {_short(actual)}"


def exchange_report(exchange: Exchange, *, limit: int = 30) -> str:
    """The readable failure text: request, route, every differing field with both values."""
    diffs = exchange.result.differences
    lines = [f"{exchange.method} {exchange.path} (route {exchange.route}): "
             f"{len(diffs)} difference{'s' if len(diffs) != 1 else ''} "
             f"(monolith {exchange.monolith.status}, service {exchange.service.status})"]
    lines += [f"  {describe_difference(d.path, d.kind, d.expected, d.actual)}" for d in diffs[:limit]]
    if len(diffs) > limit:
        lines.append(f"  … and {len(diffs) - limit} more")
    if exchange.result.noise_skipped:
        lines.append(f"  (learned noise ignored: {len(exchange.result.suppressed)} difference(s) in "
                     f"{', '.join(exchange.result.noise_skipped)})")
    return "\n".join(lines)

