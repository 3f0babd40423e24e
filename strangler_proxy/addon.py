"""The mitmproxy addon of the traffic plane: route each request by the route file, shadow, fall back, record.

Run it in reverse mode (``strangler-proxy run`` does this for you)::

    mitmdump --mode reverse:http://127.0.0.1:8000 --set keep_host_header=true \\
        -s strangler_proxy/addon.py --set strangler_routes=strangler_proxy/routes.yaml

Traffic for the monolith is forwarded by mitmproxy itself. Traffic for a service is sent by the addon
(a pooled asyncio HTTP/1.1 client on mitmproxy's own event loop: no thread hop, and the loop never blocks on
it) because only then can it enforce the route's timeout and turn a
connect error, timeout or 5xx into a fallback: mitmproxy answers a failed upstream connection with its own
502 before any hook could replace it. A fallback re-points the flow at the monolith and lets mitmproxy
send it, so the client gets a real second answer. Shadows, metrics and recording happen after the
response is ready and never delay it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import re
import secrets
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from mitmproxy import ctx, exceptions, http

if __package__ != "strangler_proxy":  # loaded by `mitmdump -s strangler_proxy/addon.py` as a script: find the project
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from servicekit.request_id import clean_request_id
from servicekit.trace_context import trace_start, traceparent_parse
from servicekit.write_positions import READ_AFTER_HEADER
from strangler_proxy.breaker import BreakerBoard, BreakerState
from strangler_proxy.diffing import HttpResponseData
from strangler_proxy.fetch import AsyncUpstreamClient, UnsendableRequest, UpstreamClient, UpstreamError
from strangler_proxy.flip_retry import FlipRetry
from strangler_proxy.header_fields import (
    BODYLESS_METHODS,
    dropped_names,
    field_bytes,
    field_text,
    fields_rewritten,
    folded_headers,
    folded_value,
    without_hop_by_hop,
)
from strangler_proxy.hold import HoldClock, WriteHold
from strangler_proxy.identity import IdentityAddon, IdentityUnavailable, shadow_identity
from strangler_proxy.limits import ConnectionGuard, head_refusal
from strangler_proxy.loader import RouteFileError, load_route_file, route_file_path
from strangler_proxy.metrics import AdminServer, ProxyMetrics
from strangler_proxy.murmur import split_bucket
from strangler_proxy.noise import noise_file_for, noise_registry_for
from strangler_proxy.oversize import OversizeBodies
from strangler_proxy.planes import PlaneRecord, plane_register, plane_unregister
from strangler_proxy.read_your_writes import ReadYourWrites
from strangler_proxy.recording import Recorder, exchange_record
from strangler_proxy.responses import (
    FALLBACK_HEADER,
    PROXY_UPSTREAM,
    REQUEST_ID_HEADER,
    ROUTE_HEADER,
    UPSTREAM_HEADER,
    error_response,
    response_from_fetched,
)
from strangler_proxy.route_watcher import RouteFileWatcher
from strangler_proxy.routing import (
    Decision,
    OpsHidden,
    PathRejected,
    RequestInfo,
    client_address,
    decide,
    parse_cookie_header,
    sticky_cookie_wanted,
)
from strangler_proxy.shadow import DiffStore, IdleGate, ShadowJob, ShadowRunner
from strangler_proxy.spec import (
    CONNECTION_TOKENS,
    HOST_PATTERN,
    OPS_HIDDEN_MESSAGE,
    SAFE_METHODS,
    RouteTable,
)
from strangler_proxy.tracing import ProxyTracing

logger = logging.getLogger("strangler_proxy")

METADATA_KEY = "strangler"
DEFAULT_HOSTS = "localhost,127.0.0.1,[::1]"


_HOST_SYNTAX = re.compile(HOST_PATTERN, re.IGNORECASE)


def _hostname(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class FlowState:
    """What the addon decided for one flow (kept in ``flow.metadata``).

    A plain class, not a dataclass: mitmproxy runs this file as a script module that is not in
    sys.modules, which dataclasses need.
    """

    def __init__(self, *, table: RouteTable, request_id: str, started: float):
        self.table = table  # the table the request started with, even if the file is reloaded meanwhile
        self.request_id = request_id
        self.started = started
        self.decision: Decision | None = None
        self.upstream: str | None = None  # upstream that produced the response
        self.fallback_reason: str | None = None
        self.upstream_seconds: float | None = None
        self.forwarded_headers: tuple[tuple[str, str], ...] = ()
        self.error: str | None = None
        self.recorded = False
        self.set_cookie: str | None = None  # the sticky cookie this answer sets (routing.sticky_cookie_wanted)
        self.read_plan = None  # read_your_writes.ReadPlan of a read after the client's write elsewhere
        self.request_fields: tuple = ()  # the request's header fields as the client sent them (resend)

    @property
    def route_label(self) -> str:
        return self.decision.route_label if self.decision else "default"


class StranglerAddon:
    def __init__(self, *, identity: IdentityAddon | None = None) -> None:
        self.identity = identity  # resolves the caller for service-bound requests (strangler_proxy.identity)
        self.table: RouteTable | None = None
        self.metrics = ProxyMetrics()
        self.hold_clock = HoldClock(self.metrics)
        self.breakers = BreakerBoard(on_change=self._breaker_changed)
        self.client = UpstreamClient()  # blocking: the shadow threads'
        self.service_client = AsyncUpstreamClient()  # on the event loop: service-bound requests
        self.store = DiffStore()
        self.shadows: ShadowRunner | None = None
        self.in_flight = IdleGate()  # client requests being answered: shadow work waits for none to be
        self.recorder: Recorder | None = None
        self.admin: AdminServer | None = None
        self.watcher: RouteFileWatcher | None = None
        self.allowed_hosts: frozenset[str] = frozenset()
        self.connections = ConnectionGuard()
        self.read_your_writes = ReadYourWrites()
        self.reload_listeners: list = []  # called with each reloaded table (on the watcher's thread)
        self._route_path: Path | None = None

    # -- options -----------------------------------------------------------------------------------------

    def load(self, loader) -> None:
        loader.add_option("strangler_routes", str, "", "Route file (default: $STRANGLER_ROUTES or the bundled one).")
        loader.add_option("strangler_hosts", str, DEFAULT_HOSTS,
                          "Comma-separated host names clients may address (Host header); '*' accepts any.")
        loader.add_option("strangler_record", str, "", "Append every exchange as a JSON line to this file.")
        loader.add_option("strangler_admin_port", int, 0, "Port of the admin server (/metrics, /diffs); 0 = off.")
        loader.add_option("strangler_admin_host", str, "127.0.0.1", "Address the admin server listens on.")
        loader.add_option("strangler_diffs", str, "var/proxy/diffs.jsonl",
                          "JSON-lines file for the bounded sample of shadow differences; empty = keep none.")
        loader.add_option("strangler_breaker_failures", int, 5, "Consecutive failures that open an upstream's breaker.")
        # Seconds are str options: mitmproxy's --set cannot parse float options.
        loader.add_option("strangler_breaker_cooldown", str, "5", "Seconds an open breaker waits before a probe.")
        loader.add_option("strangler_reload_interval", str, "0.25", "Seconds between route file checks; 0 = off.")
        loader.add_option("strangler_shadow_workers", int, 4, "Threads sending shadow requests.")

    def configure(self, updated: set[str]) -> None:
        opts = ctx.options
        if "strangler_routes" in updated or self.table is None:
            path = route_file_path(opts.strangler_routes or None)
            try:
                table = load_route_file(path)
            except RouteFileError as exc:
                raise exceptions.OptionsError(str(exc)) from exc
            self._install(table)
            self._route_path = path
            self._restart_watcher(_seconds(opts, "strangler_reload_interval"))
        elif "strangler_reload_interval" in updated:
            self._restart_watcher(_seconds(opts, "strangler_reload_interval"))
        if "strangler_hosts" in updated or not self.allowed_hosts:
            hosts = frozenset(_hostname(h) for h in opts.strangler_hosts.split(",") if h.strip())
            if not hosts:
                raise exceptions.OptionsError("strangler_hosts: at least one host name (or '*') is needed")
            self.allowed_hosts = hosts
        if {"strangler_breaker_failures", "strangler_breaker_cooldown"} & updated:
            if opts.strangler_breaker_failures < 1:
                raise exceptions.OptionsError("strangler_breaker_failures must be >= 1")
            self.breakers = BreakerBoard(failure_threshold=opts.strangler_breaker_failures,
                                         cooldown=_seconds(opts, "strangler_breaker_cooldown"),
                                         on_change=self._breaker_changed)
        if "strangler_record" in updated:
            if self.recorder is not None:
                self.recorder.close()
            self.recorder = None
            if opts.strangler_record:
                try:
                    self.recorder = Recorder(opts.strangler_record)
                except OSError as exc:
                    raise exceptions.OptionsError(f"strangler_record: {exc}") from exc
        if "strangler_diffs" in updated or "strangler_shadow_workers" in updated or self.shadows is None:
            if opts.strangler_shadow_workers < 1:
                raise exceptions.OptionsError("strangler_shadow_workers must be >= 1")
            noise = self.store.noise
            self.store = DiffStore(samples_path=opts.strangler_diffs or None)
            self.store.noise = noise  # learned noise survives a reconfiguration
            if self.shadows is not None:
                self.shadows.shutdown(wait=False)
            self.shadows = ShadowRunner(
                store=self.store, client=self.client, max_workers=opts.strangler_shadow_workers,
                on_compared=self._shadow_compared, on_error=self._shadow_failed, identity=self.identity,
            )
        if {"strangler_routes", "strangler_diffs"} & updated:
            self._configure_noise()
        if {"strangler_admin_port", "strangler_admin_host"} & updated:
            if self.admin is not None:
                self.admin.stop()
                self.admin = None
            if opts.strangler_admin_port:
                try:
                    self.admin = AdminServer(metrics=self.metrics, diff_summary=self.diff_summary,
                                             host=opts.strangler_admin_host, port=opts.strangler_admin_port).start()
                except OSError as exc:
                    raise exceptions.OptionsError(f"strangler_admin_port {opts.strangler_admin_port}: {exc}") from exc
        if self.admin is not None and {"strangler_routes", "strangler_admin_port", "strangler_admin_host"} & updated:
            self._register_plane(opts.strangler_admin_host)

    def _register_plane(self, host: str) -> None:
        """Let `strangler-proxy status` and plans find this plane and ask which route file digest it serves."""
        address = f"{host}:{self.admin.port}"
        plane_register(record=PlaneRecord(kind="mitmproxy", routes=str(self._route_path.resolve()), key=address,
                                          digest_url=f"http://{address}/diffs", pid=os.getpid()))

    def running(self) -> None:
        # The Host check needs the Host the client sent; mitmproxy's reverse mode rewrites it unless this is on.
        if not ctx.options.keep_host_header:
            ctx.options.keep_host_header = True
        if self.table is not None:
            logger.info("strangler: serving %d routes from %s (digest %s)", len(self.table.routes),
                        self.table.source, self.table.digest[:12])
        heap_freeze()

    def done(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        if self.admin is not None:
            plane_unregister(kind="mitmproxy", key=f"{ctx.options.strangler_admin_host}:{self.admin.port}")
            self.admin.stop()
        if self.shadows is not None:
            self.shadows.shutdown(wait=False)
        if self.recorder is not None:
            self.recorder.close()
        self.store.noise.flush()

    def _configure_noise(self) -> None:
        """Learned noise lives in the route file's noise file, else beside the diffs sample (loaded here)."""
        if self.table is None:
            return
        settings = self.table.settings.noise
        path = noise_file_for(settings=settings, route_file=self.table.source, samples_path=self.store.samples_path)
        self.store.noise = noise_registry_for(settings=settings, path=path, current=self.store.noise)

    def _install(self, table: RouteTable) -> None:
        # One attribute assignment: flows that already started keep the table they captured.
        self.table = table
        self.hold_clock.installed(table)

    def _restart_watcher(self, interval: float) -> None:
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        if interval > 0 and self._route_path is not None and self.table is not None:
            self.watcher = RouteFileWatcher(
                self._route_path, interval=interval, digest=self.table.digest,
                on_table=self._reloaded, on_error=self._reload_rejected,
            ).start()

    def _reloaded(self, table: RouteTable) -> None:
        self._install(table)
        self._configure_noise()
        for listener in self.reload_listeners:
            listener(table)
        self.metrics.route_table_reloads.labels(result="ok").inc()
        logger.warning("strangler: route file reloaded: %d routes (digest %s)", len(table.routes), table.digest[:12])

    def _reload_rejected(self, error: RouteFileError) -> None:
        self.metrics.route_table_reloads.labels(result="rejected").inc()
        logger.error("strangler: route file rejected, previous table keeps serving: %s", error)

    # -- hooks -------------------------------------------------------------------------------------------

    def client_connected(self, client) -> None:
        try:
            refused = self.connections.connected(client, self.table.settings)
        except Exception as exc:  # fail closed: drop the connection
            refused = f"connection guard failed: {exc!r}"
            self.metrics.hook_errors.labels(hook="client_connected", error=exc.__class__.__name__).inc()
        if refused:
            self.metrics.rejections.labels(reason="too_many_connections").inc()
            client.error = refused  # mitmproxy closes the connection

    def client_disconnected(self, client) -> None:
        self.connections.disconnected(client)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        """Refuse a head over a limit before its body is routed; start the body timeout."""
        try:
            settings = self.table.settings
            request = flow.request
            self.connections.head_received(flow.client_conn, settings)
            refusal = head_refusal(settings, target=request.data.path, fields=request.headers.fields)
            if refusal is not None:
                status, code, message = refusal
                self.metrics.rejections.labels(reason=code).inc()
                self._proxy_answers(flow)
                flow.response = error_response(status, code, message)
                flow.response.headers["Connection"] = "close"
        except Exception as exc:
            with contextlib.suppress(Exception):  # nothing may keep the refusal below from being set
                self._proxy_answers(flow)
            self._hook_failed(flow, "requestheaders", exc)

    def _proxy_answers(self, flow: http.HTTPFlow) -> None:
        """A flow answered before it is routed still gets a request id and the route headers (response hook)."""
        request_id = clean_request_id(folded_value(flow.request.headers.fields, b"x-request-id"))
        state = flow.metadata[METADATA_KEY] = FlowState(table=self.table, request_id=request_id,
                                                        started=time.monotonic())
        state.upstream = PROXY_UPSTREAM

    async def request(self, flow: http.HTTPFlow) -> None:
        try:
            self.connections.request_received(flow.client_conn)
            if flow.response is not None:  # refused when its head arrived
                return
            await self._route(flow)
        except Exception as exc:  # fail closed: mitmproxy would forward a flow left without a response
            self._hook_failed(flow, "request", exc)

    def flow_state(self, flow: http.HTTPFlow) -> FlowState | None:
        """What the addon decided for `flow` (None: it was never routed)."""
        return flow.metadata.get(METADATA_KEY)

    async def resend(self, flow: http.HTTPFlow) -> None:
        """Route `flow` again on the current table and send it (strangler_proxy.flip_retry: a write the old owner
        refused, nothing written). The addon sends it even when it goes to the monolith: mitmproxy sent the first
        try already and sends nothing from a response hook."""
        first: FlowState = flow.metadata[METADATA_KEY]
        flow.request.headers.fields = first.request_fields
        flow.response = None
        await self._route(flow)
        state: FlowState = flow.metadata[METADATA_KEY]
        state.started = first.started
        if flow.response is not None:
            return
        table, request, upstream = state.table, flow.request, state.upstream
        route = state.decision.route if state.decision is not None else None
        started = time.monotonic()
        try:
            fetched = await self.service_client.fetch(
                base_url=table.upstreams[upstream].url, method=request.method, path=request.path,
                headers=[(k, v) for k, v in request.headers.items(multi=True) if k.lower() != "host"],
                body=request.raw_content or None, timeout=route.timeout if route is not None else 30.0,
                host_header=request.host_header)
        except UpstreamError as exc:
            self.metrics.upstream_failures.labels(upstream=upstream, reason=exc.reason).inc()
            self._refuse(flow, state, upstream, exc.reason, f"{upstream} did not answer ({exc.reason})")
            return
        state.upstream_seconds = time.monotonic() - started
        flow.response = response_from_fetched(fetched, head=request.method == "HEAD")

    def _hook_failed(self, flow: http.HTTPFlow, hook: str, exc: Exception) -> None:
        """Answer the flow ourselves after an exception in ``hook``: 400 for bytes we cannot carry, else 500."""
        client_fault = isinstance(exc, UnicodeError | UnsendableRequest)  # bytes we cannot carry
        self.metrics.hook_errors.labels(hook=hook, error=exc.__class__.__name__).inc()
        if not client_fault:
            logger.exception("strangler: %s hook failed on %s; answered 500, nothing forwarded", hook,
                             flow.request.data.path[:200])
        if client_fault:
            flow.response = error_response(400, "bad_request", f"Request refused: {str(exc)[:200]}")
        else:
            flow.response = error_response(500, "proxy_error", "The proxy failed on this request; it was not sent.")
        state: FlowState | None = flow.metadata.get(METADATA_KEY)
        if state is not None:
            state.upstream = PROXY_UPSTREAM
            state.error = f"{hook}_hook:{exc.__class__.__name__}"

    async def _route(self, flow: http.HTTPFlow) -> None:
        table = self.table
        assert table is not None, "configure() loads the route table before any request"
        # Headers are read and rewritten as raw fields in a few passes: every Headers lookup or assignment scans
        # and rebuilds the whole field tuple, and a dozen of them cost more than the rest of this hook.
        request = flow.request
        fields = request.headers.fields
        request_id = clean_request_id(folded_value(fields, b"x-request-id"))
        state = FlowState(table=table, request_id=request_id, started=time.monotonic())
        state.request_fields = fields
        flow.metadata[METADATA_KEY] = state
        self.in_flight.enter(flow)
        http1 = request.data.http_version.startswith(b"HTTP/1")
        client_host = (folded_value(fields, b"host") if http1 else request.host_header) or ""  # one scan, used twice
        refusal = self._refusal(flow, table, host=client_host)
        if refusal is not None:
            status, code, message = refusal
            self.metrics.rejections.labels(reason=code).inc()
            flow.response = error_response(status, code, message)
            state.upstream = PROXY_UPSTREAM
            return
        fields = request.headers.fields = without_hop_by_hop(fields)
        headers = folded_headers(fields)
        # Read as nginx reads $cookie_<name> (each Cookie line in turn, the first of a name wins, values as sent,
        # quotes and all), so both planes key a canary alike; mitmproxy's own parser unquotes values and costs
        # ~27 us a request, about 2 % of this plane's CPU per request.
        cookie_lines = [value for name, value in fields if name.lower() == b"cookie"]
        cookies = parse_cookie_header(field_text(b"; ".join(cookie_lines))) if cookie_lines else {}
        fresh_uid = ""
        if sticky_cookie_wanted(table, cookies=cookies, headers=headers):
            fresh_uid = secrets.token_hex(16)  # the shape of nginx's $request_id, which that plane sets
            state.set_cookie = table.sticky.cookie_header(fresh_uid)
        peer = flow.client_conn.peername[0] if flow.client_conn.peername else ""
        info = RequestInfo(
            # The method as sent: request.method is uppercased by mitmproxy, and `get` must be refused (400) here as
            # nginx and decide() refuse it, not routed as GET.
            method=request.data.method.decode("utf-8", "surrogateescape"), path=request.path, headers=headers,
            cookies=cookies, fresh_uid=fresh_uid,
            client_addr=client_address(peer, headers.get("x-forwarded-for"), table.settings.trusted_proxies),
        )
        try:
            decision = decide(table, info, override_secret=os.environ.get(table.override.secret_env))
        except PathRejected as exc:
            self.metrics.rejections.labels(reason="bad_path").inc()
            flow.response = error_response(400, "bad_path", f"Request path refused: {exc}")
            state.upstream = PROXY_UPSTREAM
            return
        except OpsHidden:
            self.metrics.rejections.labels(reason="ops_hidden").inc()
            flow.response = error_response(404, "not_found", OPS_HIDDEN_MESSAGE)
            state.upstream = PROXY_UPSTREAM
            return
        if cookies:
            state.read_plan = plan = self.read_your_writes.read_plan(table, decision, method=request.method,
                                                                     cookies=cookies, now=time.time())
            if plan is not None and plan.read_after is None:
                decision = self.read_your_writes.decision_pinned(decision, plan)
                self.metrics.read_your_writes.labels(route=decision.route_label, side="owner", reason="pinned").inc()
        state.decision = decision
        # Clients are untrusted: their X-Forwarded-* are replaced, never appended to (as on the nginx plane).
        forwarded_for = info.client_addr
        # Re-frame: Transfer-Encoding went with the hop-by-hop headers and a Connection header may have named
        # Content-Length, while the body is already read and decoded; without a length of its own the upstream
        # would read the body as the next request (smuggling).
        body_length = len(request.raw_content or b"")
        framed = body_length or request.data.method not in BODYLESS_METHODS
        dropped = dropped_names(table.override.header, bool(framed), table.settings.identity.header)
        # The client's trace goes on as it is (with tracing on, ProxyTracing has put its own span's there); none or
        # an invalid one: a new trace starts here, so the upstream's spans always have a parent to join.
        trace = traceparent_parse(headers.get("traceparent")) or trace_start()
        fields = request.headers.fields = fields_rewritten(fields, drop=dropped, set_to=(
            (REQUEST_ID_HEADER, request_id),
            ("traceparent", trace.traceparent),
            ("X-Forwarded-For", forwarded_for),
            ("X-Forwarded-Host", client_host),
            ("X-Forwarded-Proto", "https" if flow.client_conn.tls else "http"),
            *((("Content-Length", str(body_length)),) if framed else ()),
        ))
        if decision.shadow is not None:  # what the shadow copy carries (it asks for an unencoded body)
            state.forwarded_headers = tuple(
                (field_text(k), field_text(v)) for k, v in fields if k.lower() not in (b"host", b"accept-encoding"))

        primary = decision.primary
        if primary == table.monolith:
            self._point_at(flow, table, table.monolith, host=client_host)
            state.upstream = table.monolith
            return
        if self.identity is not None:
            try:
                await self.identity.attach(flow, table, primary)
            except IdentityUnavailable as exc:
                self._identity_unavailable(flow, state, primary, str(exc))
                return
        breaker = self.breakers.get(primary)
        if not breaker.allow():
            self._service_unavailable(flow, state, primary, "breaker_open",
                                      f"{primary} is failing; its circuit breaker is open")
            return
        await self._send_to_service(flow, state, primary, breaker)

    async def _send_to_service(self, flow: http.HTTPFlow, state: FlowState, upstream: str, breaker) -> None:
        table, decision, request = state.table, state.decision, flow.request
        assert decision is not None
        timeout = decision.route.timeout if decision.route is not None else 30.0
        self._point_at(flow, table, upstream)
        headers = [(k, v) for k, v in request.headers.items(multi=True) if k.lower() != "host"]
        plan = state.read_plan
        if plan is not None and plan.read_after is not None:  # only the follower is asked for the positions
            headers.append((READ_AFTER_HEADER, plan.read_after))
        started = time.monotonic()
        try:
            fetched = await self.service_client.fetch(
                base_url=table.upstreams[upstream].url, method=request.method, path=request.path, headers=headers,
                body=request.raw_content or None, timeout=timeout, host_header=request.host_header,
            )
            failure = f"status_{fetched.status}" if fetched.status >= 500 else None
        except UpstreamError as exc:
            fetched, failure = None, exc.reason
        state.upstream_seconds = time.monotonic() - started
        if failure is None:
            breaker.record_success()
            if plan is not None and plan.read_after is not None:
                caught_up = ReadYourWrites.fresh(fetched.header(READ_AFTER_HEADER))
                self.metrics.read_your_writes.labels(route=state.route_label, side="follower" if caught_up else "owner",
                                                     reason="caught_up" if caught_up else "behind").inc()
                if not caught_up:
                    await self._read_from_owner(flow, state)  # behind (or cannot tell): the writer answers
                    return
            flow.response = response_from_fetched(fetched, head=request.method == "HEAD")
            state.upstream = upstream
            return
        breaker.record_failure()
        reason = "5xx" if failure.startswith("status_") else failure
        self.metrics.upstream_failures.labels(upstream=upstream, reason=reason).inc()
        logger.warning("strangler: %s %s -> %s failed (%s) request_id=%s", request.method, request.path, upstream,
                       failure, state.request_id)
        if decision.fallback is not None:
            self._fall_back(flow, state, upstream, failure)
        elif fetched is not None:
            flow.response = response_from_fetched(fetched, head=request.method == "HEAD")  # the service's own 5xx
            state.upstream = upstream
        else:
            # No fallback on this route (or an unsafe method): say so, like nginx's 502/504 but in our error shape.
            self._refuse(flow, state, upstream, reason, f"{upstream} did not answer ({failure})")

    async def _read_from_owner(self, flow: http.HTTPFlow, state: FlowState) -> None:
        plan, table = state.read_plan, state.table
        state.read_plan = None
        state.fallback_reason = "read_your_writes:behind"
        if plan.owner == table.monolith:
            self._point_at(flow, table, table.monolith)  # mitmproxy sends it
            state.upstream = table.monolith
        else:
            await self._send_to_service(flow, state, plan.owner, self.breakers.get(plan.owner))

    def _service_unavailable(self, flow: http.HTTPFlow, state: FlowState, upstream: str, reason: str,
                             message: str) -> None:
        """Serve a safe request from the monolith, refuse an unsafe one with 503."""
        if flow.request.method in SAFE_METHODS:
            self._fall_back(flow, state, upstream, reason)
        else:
            self._refuse(flow, state, upstream, reason, message)

    def _identity_unavailable(self, flow: http.HTTPFlow, state: FlowState, upstream: str, message: str) -> None:
        """Never forwarded without its identity: the monolith (fallback routes, safe methods) checks the
        credentials itself; anything else is refused."""
        logger.warning("strangler: %s %s -> %s: %s request_id=%s", flow.request.method, flow.request.path, upstream,
                       message, state.request_id)
        if state.decision is not None and state.decision.fallback is not None:
            self._fall_back(flow, state, upstream, "identity_unavailable")
            return
        flow.response = error_response(503, "identity_unavailable", "Cannot check who you are right now; "
                                       "please try again.")
        flow.response.headers["Retry-After"] = "5"
        state.upstream = PROXY_UPSTREAM
        state.error = "identity_unavailable"

    def _refuse(self, flow: http.HTTPFlow, state: FlowState, upstream: str, reason: str, message: str) -> None:
        flow.response = error_response(503, "upstream_unavailable", message,
                                       {"upstream": upstream, "reason": reason})
        flow.response.headers["Retry-After"] = "5"
        state.upstream = PROXY_UPSTREAM
        state.error = reason

    def _fall_back(self, flow: http.HTTPFlow, state: FlowState, failed: str, reason: str) -> None:
        table = state.table
        self.metrics.fallbacks.labels(route=state.route_label, upstream=failed, reason=reason).inc()
        flow.response = None
        self._point_at(flow, table, table.monolith)  # mitmproxy sends it: a real second request
        state.upstream = table.monolith
        state.fallback_reason = f"{failed}:{reason}"

    def _point_at(self, flow: http.HTTPFlow, table: RouteTable, upstream: str, *, host: str | None = None) -> None:
        """Send the flow to ``upstream``; ``host`` is the request's Host header when the caller already knows it."""
        scheme, hostname, port, netloc = _target(table.upstreams[upstream].url)
        # Set the connection target only (request.data): the .host/.port setters would also rewrite the Host
        # header, and upstreams must see the Host the client used (already checked against strangler_hosts),
        # as with the nginx plane, so absolute links they build (pagination, redirects) point at the proxy.
        data = flow.request.data
        data.scheme = scheme
        data.host = hostname
        data.port = port
        if not (flow.request.host_header if host is None else host):
            flow.request.host_header = netloc

    def _refusal(self, flow: http.HTTPFlow, table: RouteTable, *, host: str | None) -> tuple[int, str, str] | None:
        request = flow.request
        if request.data.method == b"CONNECT":  # as sent: a lowercase `connect` is a malformed method (400)
            return 405, "connect_refused", "This is a reverse proxy; CONNECT is not served."
        if request.http_version.startswith("HTTP/1") and request.authority:
            return 400, "absolute_form_refused", "Absolute-form request targets are not served; send a path."
        if "*" not in self.allowed_hosts:
            host = host or request.authority or ""
            if not _HOST_SYNTAX.fullmatch(host) or _hostname(host) not in self.allowed_hosts:
                return 421, "unknown_host", f"This proxy does not serve host {host[:100]!r}."
        connection = folded_value(request.headers.fields, b"connection")
        if connection and not CONNECTION_TOKENS.issuperset(
                token.strip().lower() for token in connection.split(",") if token.strip()):
            return 400, "connection_header_refused", "The Connection header may only name hop-by-hop headers."
        if len(request.raw_content or b"") > table.settings.max_body_bytes:
            return 413, "body_too_large", f"Request body exceeds {table.settings.max_body_bytes} bytes."
        return None

    def response(self, flow: http.HTTPFlow) -> None:
        try:
            self.connections.answered(flow.client_conn, self.table.settings)
            self._answered(flow)
        except Exception as exc:  # a half-rewritten answer is not passed on either
            self.in_flight.leave(flow)
            self._hook_failed(flow, "response", exc)

    def _answered(self, flow: http.HTTPFlow) -> None:
        state: FlowState | None = flow.metadata.get(METADATA_KEY)
        if state is None or flow.response is None:
            return
        response = flow.response
        if response.status_code >= 500 and state.fallback_reason is None and state.upstream == state.table.monolith:
            self.metrics.upstream_failures.labels(upstream=state.table.monolith, reason="5xx").inc()
        added: list[tuple[str, str]] = []
        if state.table.settings.route_headers:
            added += [(ROUTE_HEADER, state.route_label), (UPSTREAM_HEADER, state.upstream or PROXY_UPSTREAM)]
            if state.fallback_reason:
                added.append((FALLBACK_HEADER, state.fallback_reason))
        if folded_value(response.headers.fields, b"x-request-id") is None:
            added.append((REQUEST_ID_HEADER, state.request_id))
        if added:  # one rewrite of the fields instead of a scan and rebuild per header
            response.headers.fields = fields_rewritten(response.headers.fields, drop=frozenset(), set_to=added)
        if state.set_cookie is not None and state.decision is not None:  # added to the upstream's own cookies
            response.headers.fields += ((b"Set-Cookie", field_bytes(state.set_cookie)),)
        if state.read_plan is not None or flow.request.method not in SAFE_METHODS:
            rewritten = self.read_your_writes.answered_fields(
                state.table, method=flow.request.method, upstream=state.upstream, plan=state.read_plan,
                fields=response.headers.fields, cookies=flow.request.cookies, now=time.time())
            if rewritten is not None:
                response.headers.fields = rewritten
        elapsed = time.monotonic() - state.started
        if state.upstream_seconds is None and state.upstream not in (None, PROXY_UPSTREAM):
            # Forwarded by mitmproxy: from the request fully read to the response fully read.
            if response.timestamp_end and flow.request.timestamp_end:
                state.upstream_seconds = max(0.0, response.timestamp_end - flow.request.timestamp_end)
        self.metrics.request_answered(route=state.route_label, upstream=state.upstream or PROXY_UPSTREAM,
                                      status=str(response.status_code), seconds=elapsed)
        self.in_flight.leave(flow)  # before the shadow: its own request is answered
        self._maybe_shadow(flow, state)
        self._record(flow, state, elapsed)

    def error(self, flow: http.HTTPFlow) -> None:
        self.connections.answered(flow.client_conn, self.table.settings)
        state: FlowState | None = flow.metadata.get(METADATA_KEY)
        if state is None:
            return
        message = flow.error.msg if flow.error else "error"
        state.error = message
        self.in_flight.leave(flow)
        if state.upstream and state.upstream != PROXY_UPSTREAM:
            self.metrics.upstream_failures.labels(upstream=state.upstream, reason="connect").inc()
        self.metrics.request_answered(route=state.route_label, upstream=state.upstream or PROXY_UPSTREAM,
                                      status="error")
        self._record(flow, state, time.monotonic() - state.started)

    # -- after the response -------------------------------------------------------------------------------

    def _maybe_shadow(self, flow: http.HTTPFlow, state: FlowState) -> None:
        decision = state.decision
        if decision is None or decision.shadow is None or decision.route is None or self.shadows is None:
            return
        if state.fallback_reason or state.upstream != decision.primary:
            return  # the primary did not answer; there is nothing to compare
        spec = decision.route.shadow
        sample = spec.sample if spec is not None else 1.0
        # Sampled on the request id the way nginx's split_clients on $request_id does: deterministic per id.
        if sample < 1.0 and split_bucket(state.request_id) >= round(sample * 10000):
            return
        response = flow.response
        primary_response = HttpResponseData.from_pairs(
            status=response.status_code, header_pairs=response.headers.items(multi=True),
            body=response.get_content(strict=False) or b"",
        )
        table = state.table
        job = ShadowJob(
            route=state.route_label, rules=decision.route.diff, method=flow.request.method,
            path=flow.request.path, headers=state.forwarded_headers, body=flow.request.raw_content or None,
            monolith=table.monolith, primary=decision.primary, shadow=decision.shadow,
            upstream_urls=_upstream_urls(table),
            primary_response=primary_response, request_id=state.request_id, timeout=decision.route.timeout,
            host=flow.request.host_header, identity=shadow_identity(table),
        )
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # called outside mitmproxy's loop (tests driving the hooks directly)
            self.shadows.submit(job)
        else:  # the shadow's requests go out on this loop once no client request is in flight
            self.shadows.submit_async(job, self.service_client, gate=self.in_flight)

    def _shadow_compared(self, job: ShadowJob, result) -> None:
        self.metrics.shadow_comparisons.labels(route=job.route).inc()
        if not result.equal:
            self.metrics.shadow_diffs.labels(route=job.route).inc()

    def _shadow_failed(self, job: ShadowJob, reason: str) -> None:
        self.metrics.shadow_errors.labels(route=job.route, reason=reason).inc()

    def _record(self, flow: http.HTTPFlow, state: FlowState, elapsed: float) -> None:
        if self.recorder is None or state.recorded:
            return
        state.recorded = True
        response = flow.response
        self.recorder.write(exchange_record(
            method=flow.request.method, path=flow.request.path,
            request_headers=flow.request.headers.items(multi=True), request_body=flow.request.raw_content,
            status=response.status_code if response is not None else None, upstream=state.upstream,
            route=state.route_label, request_id=state.request_id, started_at=flow.request.timestamp_start,
            upstream_seconds=state.upstream_seconds, total_seconds=elapsed,
            response_bytes=len(response.raw_content or b"") if response is not None else None,
            error=state.error or state.fallback_reason,
        ))

    def _breaker_changed(self, upstream: str, state: BreakerState) -> None:
        self.metrics.breaker_changed(upstream, state)
        logger.warning("strangler: circuit breaker for %s is now %s", upstream, state.value)

    def diff_summary(self) -> dict:
        summary = self.store.summary()
        summary["breakers"] = self.breakers.states()
        table = self.table
        summary["route_table"] = {"source": table.source, "digest": table.digest} if table else None
        return summary


def heap_freeze() -> None:
    """Move everything alive once the proxy is up out of the cyclic collector's sight (``gc.freeze``).

    Finished flows leave reference cycles that only a full collection frees, and a full collection also rescans
    the ~85,000 objects startup left (mitmproxy, its addons, imports, the route table): measured 30-115 ms with
    the event loop stopped, every few seconds at saturation and about every 25 s at 200 req/s, which set the
    paced p99 of the rounds it fell in. Frozen, a full collection walks only what was allocated since (~2 ms).
    Frozen objects are still freed by reference counting when dropped (a reloaded table's old one); only a
    reference cycle among them would now stay, and startup objects are long-lived anyway.
    """
    gc.collect()
    gc.freeze()


def _seconds(opts, name: str) -> float:
    raw = getattr(opts, name)
    try:
        value = float(raw)
    except ValueError:
        raise exceptions.OptionsError(f"{name}: {raw!r} is not a number of seconds") from None
    if not 0 <= value < 86400:
        raise exceptions.OptionsError(f"{name}: must be 0..86400 seconds")
    return value


_URLS: dict[int, tuple[RouteTable, dict[str, str]]] = {}  # id(table) -> (the table, so the id stays its own; URLs)


def _upstream_urls(table: RouteTable) -> dict[str, str]:
    """Upstream name -> URL of a table, built once per table (shared by its shadow jobs, which only read it)."""
    cached = _URLS.get(id(table))
    if cached is None:
        if len(_URLS) >= 16:  # reloads replace tables; keep a handful
            _URLS.clear()
        cached = _URLS[id(table)] = (table, {name: upstream.url for name, upstream in table.upstreams.items()})
    return cached[1]


@functools.lru_cache(maxsize=64)
def _target(url: str) -> tuple[bytes, str, int, str]:
    """scheme, host, port and netloc of an upstream URL (parsed once, not per request)."""
    parts = urlsplit(url)
    return parts.scheme.encode(), parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), parts.netloc


identity = IdentityAddon()
strangler = StranglerAddon(identity=identity)
# WriteHold first: a held write is answered before routing (strangler_proxy.hold); FlipRetry's response hook before
# StranglerAddon's, which then sees the final answer (strangler_proxy.flip_retry). IdentityAddon's hooks run before
# StranglerAddon's, ProxyTracing's after (see their modules); OversizeBodies answers mitmproxy's own refusals.
addons = [WriteHold(), FlipRetry(strangler), identity, strangler, ProxyTracing(), OversizeBodies(strangler)]
