"""ProxyTracing (mitmproxy plane): a span per request when tracing is on, its traceparent sent upstream, composed
with StranglerAddon as addon.py composes them; nothing when tracing is off."""

from __future__ import annotations

import pytest
from mitmproxy import http
from mitmproxy.flow import Error as flow_error
from mitmproxy.test import taddons
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from servicekit.trace_context import traceparent_parse
from servicekit.tracing import tracing_start, tracing_stop
from strangler_proxy.addon import StranglerAddon
from strangler_proxy.tracing import SPAN_KEY, ProxyTracing

from .test_addon import catalog, make_flow, monolith, routes_file, through  # noqa: F401 - fixtures

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    tracing_start(service_name="strangler-proxy", exporter=exporter, batch=False)
    yield exporter
    tracing_stop()


@pytest.fixture
def proxy(routes_file, tmp_path):  # noqa: F811 - the fixture above, composed as addon.py composes them
    main, tracing = StranglerAddon(), ProxyTracing()
    with taddons.context(main, tracing) as tctx:
        tctx.configure(main, strangler_routes=str(routes_file), strangler_reload_interval="0",
                       strangler_diffs=str(tmp_path / "diffs.jsonl"))
        yield main, tracing
    main.done()


def traced(proxy, flow):
    main, tracing = proxy
    main.requestheaders(flow)
    tracing.requestheaders(flow)
    through(main, flow)  # request, the monolith's canned answer, StranglerAddon's response hook
    tracing.response(flow)
    return flow


def test_the_proxy_span_continues_the_clients_trace_and_is_the_upstreams_parent(spans, proxy):
    flow = traced(proxy, make_flow("PATCH", "/legacy/items/7?token=secret", headers=[("traceparent", CALLER)]))
    [span] = spans.get_finished_spans()
    sent = traceparent_parse(flow.request.headers["traceparent"])
    assert span.name == "proxy PATCH" and span.kind == SpanKind.SERVER
    assert format(span.context.trace_id, "032x") == sent.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert span.parent.span_id == int("00f067aa0ba902b7", 16)
    assert sent.span_id == format(span.context.span_id, "016x")  # what the monolith's span will name as parent
    assert span.attributes["url.path"] == "/legacy/items/7"  # never the query
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["strangler.upstream"] == "monolith"
    assert SPAN_KEY not in flow.metadata


@pytest.mark.parametrize("header", [None, "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"])
def test_without_a_valid_client_traceparent_the_proxy_starts_the_trace(spans, proxy, header):
    flow = traced(proxy, make_flow("GET", "/legacy/", headers=[("traceparent", header)] if header else []))
    [span] = spans.get_finished_spans()
    assert span.parent is None
    assert traceparent_parse(flow.request.headers["traceparent"]).span_id == format(span.context.span_id, "016x")


def test_an_error_or_a_5xx_fails_the_span(spans, proxy):
    main, tracing = proxy
    flow = make_flow("GET", "/legacy/")
    tracing.requestheaders(flow)
    flow.error = flow_error("connection refused")  # what mitmproxy sets before the error hook
    tracing.error(flow)
    flow = make_flow("GET", "/legacy/")
    tracing.requestheaders(flow)
    flow.response = http.Response.make(502)
    tracing.response(flow)
    refused, bad_gateway = spans.get_finished_spans()
    assert refused.status.status_code == bad_gateway.status.status_code == StatusCode.ERROR
    assert refused.status.description == "connection refused"


def test_with_tracing_off_the_proxy_records_nothing_and_still_passes_a_trace_on(proxy):
    flow = traced(proxy, make_flow("GET", "/legacy/", headers=[("traceparent", CALLER)]))
    assert SPAN_KEY not in flow.metadata
    assert flow.request.headers["traceparent"] == CALLER  # StranglerAddon passes the client's on as it is
