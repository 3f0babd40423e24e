"""Write hold for an ownership flip (mitmproxy plane): writes on a held route's paths wait or answer 503.

A route with ``hold: reject`` or ``hold: queue`` holds every write (any method but GET/HEAD/OPTIONS) whose path
it matches, whatever route would serve it (a read-only route holds the writes the monolith would otherwise
take). ``reject``: 503 ``write_hold`` with ``Retry-After: settings.hold_retry_after`` at once. ``queue``: the
request waits (without blocking the event loop) until a reloaded route file lifts the hold, at most
``settings.hold_queue_seconds``, then goes on as usual, or gets the same 503. The nginx plane renders the same
decision (``nginx/render.py``) and answers 503 for both modes.

Composed before ``StranglerAddon`` in the addon list; it reads that addon's current table, so a reload lifts a
hold for the waiting requests too. Fails closed: an error in this hook answers 503 (never forwards the write).
"""

from __future__ import annotations

import asyncio
import logging
import time

from mitmproxy import ctx, http

from strangler_proxy.responses import PROXY_UPSTREAM, UPSTREAM_HEADER, error_response
from strangler_proxy.routing import PathRejected, normalize_path, route_matches_path
from strangler_proxy.spec import HOLD_SAFE_METHODS, Route, RouteTable

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.02
HOLD_CODE = "write_hold"


def held_route(table: RouteTable, *, method: str, path: str) -> Route | None:
    """The held route a write on `path` falls under (the longest prefix), or None (not a write / not held)."""
    if method.upper() in HOLD_SAFE_METHODS:
        return None
    held = [r for r in table.routes if r.hold is not None and route_matches_path(r, path)]
    return max(held, key=lambda r: len(r.prefix)) if held else None


def hold_response(table: RouteTable) -> http.Response:
    retry = table.settings.hold_retry_after
    response = error_response(503, HOLD_CODE, f"Writes here are held for a moment (ownership flip); retry in {retry}s.")
    response.headers["Retry-After"] = str(retry)
    response.headers[UPSTREAM_HEADER] = PROXY_UPSTREAM
    return response


async def hold_lifted(*, route: Route, table: RouteTable, table_source, method: str, path: str) -> bool:
    """Whether the hold on a write under `route` lifts within `table`'s hold_queue_seconds: ``queue`` waits for a
    reloaded table (``table_source()``) without blocking the event loop; ``reject`` answers False at once."""
    if route.hold != "queue":
        return False
    deadline = time.monotonic() + table.settings.hold_queue_seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(POLL_SECONDS)
        current = table_source()
        if current is None or held_route(current, method=method, path=path) is None:
            return True
    return False


class HoldClock:
    """Times each route's hold from the table that set it to the table that lifted it (write_hold_seconds)."""

    def __init__(self, metrics):
        self.metrics = metrics
        self.since: dict[str, float] = {}

    def installed(self, table: RouteTable) -> None:
        now = time.monotonic()
        held = {r.label for r in table.routes if r.hold is not None}
        for label in held - set(self.since):
            self.since[label] = now
        for label in set(self.since) - held:
            self.metrics.write_hold_seconds.labels(route=label).observe(now - self.since.pop(label))


class WriteHold:
    """Holds writes of held routes; counts them and the time each waited (the proxy's /metrics)."""

    def __init__(self, table_source=None):
        # table_source: () -> RouteTable | None; default: StranglerAddon's table (looked up when first needed)
        self._table_source = table_source
        self.held = 0  # writes answered 503
        self.queued = 0  # writes that waited and then went on

    def _table(self) -> RouteTable | None:
        if self._table_source is None:
            main = ctx.master.addons.get("strangleraddon")
            self._table_source = (lambda: main.table) if main is not None else (lambda: None)
            self._metrics = main.metrics if main is not None else None
        return self._table_source()

    def _count(self, route: Route, outcome: str) -> None:
        if getattr(self, "_metrics", None) is not None:
            self._metrics.write_holds.labels(route=route.label, outcome=outcome).inc()

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return
        try:
            await self._hold(flow)
        except Exception:  # fail closed: a write we cannot judge is not forwarded
            logger.exception("strangler: write hold failed on %s; answered 503", flow.request.data.path[:200])
            table = self._table()
            flow.response = hold_response(table) if table is not None else error_response(503, HOLD_CODE, "held")

    async def _hold(self, flow: http.HTTPFlow) -> None:
        table = self._table()
        if table is None:
            return
        method = flow.request.data.method.decode("utf-8", "surrogateescape")
        # held_route() says None for these anyway: skip normalising the path of every read, and every request
        # while no route is held (nearly always)
        if method.upper() in HOLD_SAFE_METHODS or not any(r.hold is not None for r in table.routes):
            return
        try:
            path = normalize_path(flow.request.path)
        except PathRejected:
            return  # the router refuses it (400)
        route = held_route(table, method=method, path=path)
        if route is None:
            return
        if await hold_lifted(route=route, table=table, table_source=self._table, method=method, path=path):
            self.queued += 1
            self._count(route, "queued")
            return
        table = self._table() or table
        self.held += 1
        self._count(route, "held")
        flow.response = hold_response(table)
