"""A write the old owner refused because of an ownership flip is sent again, so a client never sees that 409.

The race (docs/topics/ownership-flip.md): a write forwarded just before a route's hold took effect can still be in
the old owner's application, before its transaction, when the flip fences the old owner; it answers 409
``not_owner``. Nothing was written: the fence refuses inside the write's transaction (or the early owner check
refuses before it), so sending the write again is safe. This addon treats such a refusal like a write that
arrived during the hold: while the write's path is held it waits as ``hold: queue`` waits (``reject``: 503
``write_hold`` + ``Retry-After`` at once, the hold's contract), and once the hold is lifted the write is routed
again on the current table (to whichever side owns it now) and sent once more. At most once per request.

Only a refusal the proxy can explain by a flip is re-sent: the route table changed since the write was routed,
or its path is held now. A 409 ``not_owner`` with neither (writes routed to a project that does not own them)
goes to the client as it is: that is a misconfiguration to see, not to hide. Composed before ``StranglerAddon``
(its response hook then sees only the final answer); fails closed: an error here answers 503 ``write_hold``.
"""

from __future__ import annotations

import json
import logging

from mitmproxy import ctx, http

from strangler_proxy.hold import HOLD_CODE, held_route, hold_lifted, hold_response
from strangler_proxy.responses import PROXY_UPSTREAM, error_response
from strangler_proxy.routing import PathRejected, normalize_path
from strangler_proxy.spec import HOLD_SAFE_METHODS

logger = logging.getLogger(__name__)

NOT_OWNER_CODE = "not_owner"  # strangler_sync.errors.NotOwner's code (the proxy does not import the data plane)
RESENT_KEY = "strangler_flip_resent"  # flow.metadata: this request was sent again once already


def not_owner_refusal(response: http.Response) -> bool:
    """A 409 whose JSON body is ``{"error": {"code": "not_owner", ...}}`` (the data plane's fence)."""
    if response.status_code != 409:
        return False
    try:
        body = json.loads(response.get_content(strict=False) or b"")
    except ValueError:
        return False
    error = body.get("error") if isinstance(body, dict) else None
    return isinstance(error, dict) and error.get("code") == NOT_OWNER_CODE


class FlipRetry:
    """Sends a write refused 409 ``not_owner`` by a flip again once its hold lifts (``StranglerAddon.resend``)."""

    def __init__(self, strangler=None):
        self._strangler = strangler  # default: the StranglerAddon of the running master (looked up when needed)
        self.resent = 0  # writes sent again after a flip's refusal
        self.held = 0  # writes answered 503 write_hold instead of the refusal

    def _main(self):
        if self._strangler is None:
            self._strangler = ctx.master.addons.get("strangleraddon")
        return self._strangler

    def response(self, flow: http.HTTPFlow):
        # A plain function that returns a coroutine only for a refused write (mitmproxy awaits what a hook returns):
        # every other answer passes without a coroutine made and scheduled for it.
        if (flow.response is None or flow.response.status_code != 409 or flow.metadata.get(RESENT_KEY)
                or flow.request.method in HOLD_SAFE_METHODS):
            return None
        return self._refused(flow)

    async def _refused(self, flow: http.HTTPFlow) -> None:
        try:
            await self._retry(flow)
        except Exception:  # fail closed: the write was refused (nothing written); the client may send it again
            logger.exception("strangler: flip retry failed on %s; answered 503", flow.request.data.path[:200])
            main = self._main()
            flow.response = (hold_response(main.table) if main is not None and main.table is not None
                             else error_response(503, HOLD_CODE, "held"))

    async def _retry(self, flow: http.HTTPFlow) -> None:
        main = self._main()
        state = main.flow_state(flow) if main is not None else None
        if state is None or not not_owner_refusal(flow.response):
            return
        method = flow.request.data.method.decode("utf-8", "surrogateescape")
        try:
            path = normalize_path(flow.request.path)
        except PathRejected:
            return
        table = main.table
        route = held_route(table, method=method, path=path)
        if route is None and table is state.table:
            return  # no flip the proxy knows of: the client sees the refusal
        if route is not None and not await hold_lifted(route=route, table=table, table_source=lambda: main.table,
                                                       method=method, path=path):
            self._held(flow, main, state, route)
            return
        flow.metadata[RESENT_KEY] = True
        self.resent += 1
        main.metrics.write_resends.labels(route=state.route_label).inc()
        logger.warning("strangler: %s %s refused by an ownership flip (409 not_owner); sent again",
                       flow.request.method, flow.request.path[:200])
        await main.resend(flow)

    def _held(self, flow: http.HTTPFlow, main, state, route) -> None:
        self.held += 1
        main.metrics.write_holds.labels(route=route.label, outcome="held").inc()
        flow.response = hold_response(main.table)
        state.upstream = PROXY_UPSTREAM  # the proxy answered: not the refusing upstream's answer any more
