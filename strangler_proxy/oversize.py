"""Oversized request bodies on the mitmproxy plane: the project's JSON 413 (as nginx answers), never read whole.

mitmproxy applies one limit while a body arrives, its ``body_size_limit`` option: by ``Content-Length`` before any
body byte is read, by the bytes buffered so far for a chunked body. It checks that limit before any addon sees the
body and answers with its own HTML 413 page after calling the ``error`` hook. This addon sets ``body_size_limit`` to
the route file's ``max_body_bytes`` (unless the operator set one) and, in ``error``, writes the JSON 413 to the client
itself and closes the connection: mitmproxy then sends nothing more (it writes nothing to a closing transport). A
request thus holds at most the limit plus one socket read (64 KiB) in memory, whatever it announces or streams.

The answer carries ``X-Request-ID`` and the route headers like every other answer the proxy gives itself, and
``Connection: close`` (the rest of the body is not read). HTTP/2 streams are left to mitmproxy (it resets the
stream): writing HTTP/1 bytes there would break the connection for the client's other streams.
"""

from __future__ import annotations

import asyncio
import logging

from mitmproxy import ctx, http
from mitmproxy.net.http.http1 import assemble_response

from servicekit.request_id import clean_request_id
from strangler_proxy.header_fields import folded_value
from strangler_proxy.responses import PROXY_UPSTREAM, REQUEST_ID_HEADER, ROUTE_HEADER, UPSTREAM_HEADER, error_response
from strangler_proxy.spec import ProxySettings, RouteTable

logger = logging.getLogger("strangler_proxy")

# What mitmproxy's HttpStream.check_body_size puts in flow.error (mitmproxy 10 and 11).
BODY_LIMIT_MESSAGE = "Request body exceeds mitmproxy's body_size_limit."


def oversize_answer(flow: http.HTTPFlow, settings: ProxySettings, *, request_id: str | None) -> http.Response:
    """The answer to a body over the limit: the refusal already set on its head (431, ...), else a 413."""
    response = flow.response or error_response(
        413, "body_too_large", f"Request body exceeds {settings.max_body_bytes} bytes.")
    if request_id is None:
        request_id = clean_request_id(folded_value(flow.request.headers.fields, b"x-request-id"))
    response.headers[REQUEST_ID_HEADER] = request_id
    if settings.route_headers:
        response.headers[ROUTE_HEADER] = "default"
        response.headers[UPSTREAM_HEADER] = PROXY_UPSTREAM
    response.headers["Connection"] = "close"
    return response


def answer_and_close(client, data: bytes) -> bool:
    """Write ``data`` to the client's connection and close it (buffered bytes are still sent); False if gone."""
    server = ctx.master.addons.get("proxyserver")
    handler = server.connections.get(client.id) if server is not None else None
    io = handler.transports.get(handler.client) if handler is not None else None
    writer = io.writer if io is not None else None
    if writer is None or writer.is_closing():
        return False
    writer.write(data)
    writer.close()
    return True


class OversizeBodies:
    """mitmproxy addon beside StranglerAddon: owns ``body_size_limit`` and turns its refusals into JSON 413s.

    ``strangler`` is the StranglerAddon whose route table sets the limit (followed across reloads).
    """

    def __init__(self, strangler) -> None:
        self.strangler = strangler
        self.owned = False  # True once this addon set body_size_limit (the operator did not)
        self.loop: asyncio.AbstractEventLoop | None = None
        strangler.reload_listeners.append(self._table_reloaded)

    def running(self) -> None:
        table = self.strangler.table
        if table is None or ctx.options.body_size_limit:
            return  # the operator's own limit stays; the addon's check after the body still answers JSON 413
        self.owned = True
        self.loop = asyncio.get_running_loop() if _loop_running() else None
        self._apply(table.settings.max_body_bytes)

    def _apply(self, limit: int) -> None:
        if self.owned and ctx.options.body_size_limit != str(limit):
            ctx.options.update(body_size_limit=str(limit))

    def _table_reloaded(self, table: RouteTable) -> None:
        """Called on the route file watcher's thread: options change on the event loop only."""
        if self.owned and self.loop is not None:
            self.loop.call_soon_threadsafe(self._apply, table.settings.max_body_bytes)

    def error(self, flow: http.HTTPFlow) -> None:
        if flow.error is None or flow.error.msg != BODY_LIMIT_MESSAGE:
            return
        if not flow.request.data.http_version.startswith(b"HTTP/1"):
            return
        try:
            table = self.strangler.table
            state = flow.metadata.get("strangler")  # addon.METADATA_KEY: a FlowState when the head was refused
            response = oversize_answer(flow, table.settings, request_id=getattr(state, "request_id", None))
            if answer_and_close(flow.client_conn, assemble_response(response)):
                self.strangler.metrics.rejections.labels(reason="body_too_large").inc()
        except Exception as exc:  # mitmproxy's own 413 page still goes out: nothing is forwarded either way
            self.strangler.metrics.hook_errors.labels(hook="error", error=exc.__class__.__name__).inc()
            logger.exception("strangler: could not answer an oversized body with JSON")


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
