"""Client limits of the mitmproxy plane that mitmproxy has no option for: request-head sizes, connections per
client address, and the header/body/idle timeouts nginx has (client_header_timeout, client_body_timeout,
keepalive_timeout).

``head_refusal`` checks a request head as soon as mitmproxy has parsed it (sizes, control characters).
``ConnectionGuard`` counts open connections per address (refusing one over the limit as it connects) and gives
each connection a deadline for what it is waiting for: a complete head after connecting, the body after the
head, the next request after the last answer. A sweep once a second closes connections past their deadline
through mitmproxy's proxyserver addon, the way its own inactivity timeout does. Per request only a few
attribute updates run.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import Counter

from strangler_proxy.spec import ProxySettings

logger = logging.getLogger("strangler_proxy")

SWEEP_SECONDS = 1.0


# Not allowed in field names or values (RFC 9110 5.5) nor in the target: mitmproxy passes such bytes on as they are,
# and a lenient upstream may read a bare CR as a line break (a header no proxy check saw).
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def head_refusal(settings: ProxySettings, *, target: bytes, fields) -> tuple[int, str, str] | None:
    """(status, code, message) when a request head is over a limit or holds control characters, else None.

    ``fields`` are raw header pairs. One C-level join serves the control-character scan and, for the usual
    head, the size check: when the whole head is within one line's limit no line can be over it.
    """
    joined = b"\t".join(map(b"\t".join, fields))  # tab is allowed in values, so it cannot hide a control byte
    if _CONTROL.search(joined) or _CONTROL.search(target):
        return 400, "bad_header", "Control characters in a header or the request target."
    if len(target) > settings.max_url_bytes:
        return 414, "url_too_long", f"The request target exceeds {settings.max_url_bytes} bytes."
    if len(fields) > settings.max_headers:
        return 431, "too_many_headers", f"More than {settings.max_headers} header lines."
    line_limit = settings.max_header_bytes
    if len(joined) + 3 * len(fields) <= line_limit:  # as on the wire: ": " and CRLF per line, less the tab
        return None
    total = 0
    for name, value in fields:
        size = len(name) + len(value) + 4
        if size > line_limit:
            return 431, "header_too_large", f"A header line exceeds {line_limit} bytes."
        total += size
    if total > settings.max_header_total_bytes:
        return 431, "headers_too_large", f"The headers exceed {settings.max_header_total_bytes} bytes."
    return None


class _Tracked:
    """One client connection: what it is waiting for, until when, and its requests not yet answered."""

    __slots__ = ("client", "deadline", "phase", "in_flight")

    def __init__(self, client, deadline: float):
        self.client = client
        self.deadline = deadline
        self.phase = "header"
        self.in_flight = 0


class ConnectionGuard:
    """Per-address connection counts and per-connection deadlines (see the module docstring)."""

    def __init__(self) -> None:
        self.open_per_address: Counter[str] = Counter()
        self._tracked: dict[str, _Tracked] = {}  # by client id
        self._sweeper: asyncio.Task | None = None

    def connected(self, client, settings: ProxySettings) -> str | None:
        """Track a new connection; the reason to refuse it (too many from its address), else None."""
        address = client.peername[0] if client.peername else ""
        limit = settings.max_connections_per_client
        if limit and self.open_per_address[address] >= limit:
            return f"more than {limit} connections from {address}"
        self.open_per_address[address] += 1
        self._tracked[client.id] = _Tracked(client, time.monotonic() + settings.client_header_timeout)
        self._start_sweeper()
        return None

    def disconnected(self, client) -> None:
        if self._tracked.pop(client.id, None) is None:
            return  # refused at connect: never counted
        address = client.peername[0] if client.peername else ""
        self.open_per_address[address] -= 1
        if self.open_per_address[address] <= 0:
            del self.open_per_address[address]

    def head_received(self, client, settings: ProxySettings) -> None:
        """A request head is in: its body must follow within the body timeout."""
        if (tracked := self._tracked.get(client.id)) is not None:
            tracked.in_flight += 1
            tracked.deadline, tracked.phase = time.monotonic() + settings.client_body_timeout, "body"

    def request_received(self, client) -> None:
        """The whole request is in: the upstream's timeouts apply until the answer."""
        if (tracked := self._tracked.get(client.id)) is not None:
            tracked.deadline, tracked.phase = float("inf"), "upstream"

    def answered(self, client, settings: ProxySettings) -> None:
        """An answer is ready; with none other outstanding (HTTP/2 has several) the connection may idle this long."""
        if (tracked := self._tracked.get(client.id)) is not None:
            tracked.in_flight = max(0, tracked.in_flight - 1)
            if tracked.in_flight == 0:
                tracked.deadline, tracked.phase = time.monotonic() + settings.idle_timeout, "idle"

    def _start_sweeper(self) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever(), name="strangler-limits")

    async def _sweep_forever(self) -> None:
        from mitmproxy import ctx  # the proxyserver addon closes connections; only there when mitmproxy runs

        while self._tracked:
            await asyncio.sleep(SWEEP_SECONDS)
            now = time.monotonic()
            expired = [tracked for tracked in self._tracked.values() if tracked.deadline < now]
            if not expired:
                continue
            server = ctx.master.addons.get("proxyserver")
            for tracked in expired:
                phase, tracked.deadline, tracked.phase = tracked.phase, float("inf"), "closing"
                handler = server.connections.get(tracked.client.id) if server is not None else None
                if handler is not None:
                    logger.info("strangler: closing %s: no %s within its timeout", tracked.client.peername, phase)
                    await handler.on_timeout()
