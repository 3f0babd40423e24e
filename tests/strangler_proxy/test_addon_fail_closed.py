"""The addon never fails open: a hook error answers JSON 5xx/400 (counted), and no raw request line or header
set makes it forward something badly framed, with internal headers, or to anything but a route table upstream.

The fuzzing pass is bounded (hypothesis, a fixed number of examples) and parses each generated head with
mitmproxy's own HTTP/1 reader, as the running proxy would, before the addon's hooks see it.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from types import MappingProxyType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mitmproxy import http
from mitmproxy.net.http.http1 import read_request_head
from mitmproxy.test import taddons, tflow

from strangler_proxy.addon import StranglerAddon
from strangler_proxy.override import override_token

from .upstream_servers import UpstreamServer

SECRET = "fuzz-secret"
ROUTES = """\
upstreams:
  monolith: {monolith}
  catalog: {catalog}
monolith: monolith
settings:
  max_body_bytes: 1000
routes:
  - prefix: /api/products/
    mode: service
    service: catalog
    timeout: 5
  - prefix: /api/categories/
    mode: canary
    weight: 50
    service: catalog
    timeout: 5
"""
INTERNAL = (b"x-strangler-force", b"x-strangler-shadow", b"x-strangler-mirror-route", b"x-strangler-mirror-primary",
            b"x-strangler-mirror-shadow", b"transfer-encoding", b"connection", b"keep-alive", b"te", b"upgrade")


@pytest.fixture(scope="module")
def servers():
    monolith, catalog = UpstreamServer("monolith").start(), UpstreamServer("catalog").start()
    yield monolith, catalog
    monolith.stop()
    catalog.stop()


@pytest.fixture(scope="module")
def proxy(servers, tmp_path_factory):
    monolith, catalog = servers
    tmp = tmp_path_factory.mktemp("fuzz")
    routes = tmp / "routes.yaml"
    routes.write_text(ROUTES.format(monolith=monolith.url, catalog=catalog.url))
    addon = StranglerAddon()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STRANGLER_OVERRIDE_SECRET", SECRET)
        with taddons.context(addon) as tctx:
            tctx.configure(addon, strangler_routes=str(routes), strangler_reload_interval="0",
                           strangler_diffs="", strangler_breaker_failures=1000)
            yield addon
    addon.done()


def _flow(head: bytes, body: bytes = b"") -> http.HTTPFlow:
    request = read_request_head(head.split(b"\r\n")[:-2])
    request.data.content = body
    request.timestamp_start = request.timestamp_end = time.time()
    return tflow.tflow(req=request)


def _hook_errors(addon, hook: str) -> float:
    return sum(sample.value for metric in addon.metrics.hook_errors.collect() for sample in metric.samples
               if sample.name.endswith("_total") and sample.labels["hook"] == hook)


def test_an_exception_in_a_hook_answers_json_500_counted_and_nothing_is_forwarded(proxy):
    table = proxy.table
    # A table naming an upstream it does not define (the loader refuses this; a bug elsewhere might not).
    proxy.table = type(table)(**{**table.__dict__, "upstreams": MappingProxyType({"monolith": table.upstreams[
        "monolith"]})})
    try:
        before = _hook_errors(proxy, "request")
        flow = _flow(b"POST /api/products/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n", b"{}")
        asyncio.run(proxy.request(flow))
    finally:
        proxy.table = table
    assert flow.response is not None and flow.response.status_code == 500  # mitmproxy forwards nothing
    assert json.loads(flow.response.content)["error"]["code"] == "proxy_error"
    assert _hook_errors(proxy, "request") == before + 1
    proxy.response(flow)
    assert flow.response.headers["X-Strangler-Upstream"] == "proxy"


def test_a_non_ascii_override_token_is_ignored_not_an_error(proxy, servers):
    _, catalog = servers
    before = len(catalog.received())
    flow = _flow("POST /api/products/ HTTP/1.1\r\nHost: localhost\r\nX-Strangler-Force: catalog.\u00e9\r\n"
                 "X-Strangler-Shadow: 1\r\nContent-Length: 2\r\n\r\n".encode(), b"{}")
    asyncio.run(proxy.request(flow))
    assert flow.response.status_code == 200 and json.loads(flow.response.content)["upstream"] == "catalog"
    sent = catalog.received()[before]
    assert "x-strangler-force" not in sent["headers"] and "x-strangler-shadow" not in sent["headers"]


_PATH_PIECES = [b"/", b"api", b"products", b"categories", b"cart", b"%2f", b"%", b"..", b".", b"\xff", b"\xc3\xa9",
                b"?", b"#", b"\\", b"*", b"@", b":", b"%00", b"x", b"//", b";"]
_NAMES = [b"Host", b"host", b"X-Strangler-Force", b"X-Strangler-Shadow", b"X-Strangler-Mirror-Route", b"Connection",
          b"Content-Length", b"Transfer-Encoding", b"X-Forwarded-For", b"X-Forwarded-Host", b"X-Request-ID",
          b"Cookie", b"X-User-Id", b"Keep-Alive", b"TE", b"Upgrade", b"X-Note", b"Accept", b"Caf\xc3\xa9"]
_VALUES = [b"", b"localhost", b"localhost:8080", b"127.0.0.1", b"evil.example", b"localhost.", b"[::1]",
           b"[::1]evil", b"a@b", b"chunked", b"close", b"Content-Length", b"Host, X-Note", b"0", b"2", b"-1",
           b"\xff", b"\xe2\x82\xac", b"catalog.\xc3\xa9", b"catalog." + override_token(SECRET, "catalog").encode(),
           override_token(SECRET, "catalog").encode(), override_token(SECRET, "monolith").encode(), b"1, 2",
           b"strangler_uid=\xff", b" spaced ", b"1\rTransfer-Encoding: chunked", b"\x00", b"\x7f", b"a\tb"]

_values = st.one_of(st.sampled_from(_VALUES), st.builds(bytes.__add__, st.sampled_from(_VALUES),
                                                        st.sampled_from(_VALUES)))
heads = st.builds(
    lambda method, path, host, headers: (method + b" " + path + b" HTTP/1.1\r\n" + host
                                         + b"".join(n + b": " + v + b"\r\n" for n, v in headers) + b"\r\n"),
    st.sampled_from([b"GET", b"POST", b"DELETE", b"PATCH", b"HEAD", b"OPTIONS", b"get", b"PROPFIND"]),
    st.lists(st.sampled_from(_PATH_PIECES), max_size=8).map(lambda parts: b"/" + b"".join(parts)),
    # Mostly a served Host, so that the examples get past the Host check to routing and forwarding.
    st.sampled_from([b"Host: localhost\r\n", b"Host: localhost:8080\r\n", b"Host: 127.0.0.1\r\n", b""]),
    st.lists(st.tuples(st.sampled_from(_NAMES), _values), max_size=8),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(head=heads, body=st.sampled_from([b"", b"{}", b"GET /smuggled HTTP/1.1\r\nHost: evil\r\n\r\n"]))
def test_no_request_head_leads_to_fail_open_forwarding(proxy, servers, head, body):
    try:
        flow = _flow(head, body)
    except ValueError:
        return  # mitmproxy's reader refuses it (400 before any hook)
    proxy.requestheaders(flow)  # as mitmproxy calls them: the head first, then the whole request
    asyncio.run(proxy.request(flow))
    table = proxy.table
    if flow.response is not None:  # answered: by the proxy itself, or by the service it sent the request to
        assert flow.response.status_code != 500, flow.response.content
        return
    # Left for mitmproxy to forward: it must be to an upstream of the table, well framed and cleaned.
    targets = {(u.url.split("://")[1]) for u in table.upstreams.values()}
    assert f"{flow.request.data.host}:{flow.request.data.port}" in targets
    fields = flow.request.headers.fields
    assert not re.search(rb"[\x00-\x08\x0a-\x1f\x7f]", b"\t".join(part for field in fields for part in field))
    names = [name.lower() for name, _ in fields]
    assert not set(names) & set(INTERNAL), names
    lengths = [value for name, value in fields if name.lower() == b"content-length"]
    assert lengths == ([str(len(body)).encode()] if body or flow.request.data.method not in (
        b"GET", b"HEAD", b"OPTIONS", b"DELETE") else []), (lengths, body)
    assert [value for name, value in fields if name.lower() == b"x-forwarded-for"] == [b"127.0.0.1"] or \
        flow.client_conn.peername[0] != "127.0.0.1"
