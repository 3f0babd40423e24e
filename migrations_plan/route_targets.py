"""Which service a request goes to under a route table, by strangler_proxy's own routing decision (``decide``).

Two questions: which service a route *reaches* now (served, in a canary share, or shadowed: what the
coverage gate checks for a step), and which service a request *belongs* to (the service of the route it
matches, whatever its mode: what replay compares, before and during a migration).
"""

from __future__ import annotations

from strangler_proxy.routing import Decision, OpsHidden, PathRejected, RequestInfo, decide
from strangler_proxy.spec import RouteTable


def _decision(table: RouteTable, method: str, path: str) -> Decision | None:
    try:
        return decide(table, RequestInfo(method=method, path=path), override_secret=None)
    except (PathRejected, OpsHidden):  # the proxy answers these itself: no upstream receives them
        return None


def request_service(table: RouteTable, *, method: str, path: str) -> str | None:
    """The service the request can reach under this table (served, in a canary share, or shadowed), else None."""
    decision = _decision(table, method, path)
    if decision is None:
        return None
    if decision.primary != table.monolith:
        return decision.primary
    if decision.shadow is not None:
        return decision.shadow
    route = decision.route
    if route is not None and route.mode == "canary" and route.weight > 0:
        return route.service  # this request's sticky key fell on the monolith's side; others' do not
    return None


def route_service(table: RouteTable, *, method: str, path: str) -> str | None:
    """The service of the route the request matches (any mode), None when no route with a service takes it."""
    decision = _decision(table, method, path)
    return decision.route.service if decision is not None and decision.route is not None else None
