"""Identity at the edge, proxy side: the route file's settings.identity, the nginx render, and the mitmproxy
addon's lookup (credentials, bounded TTL cache, fail closed) against a fake identity endpoint."""

from __future__ import annotations

import asyncio
import base64
import json
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from mitmproxy.test import tflow

from strangler_proxy.diffing import HttpResponseData
from strangler_proxy.fetch import AsyncUpstreamClient
from strangler_proxy.identity import (
    IdentityAddon,
    IdentityCache,
    IdentityResolver,
    IdentityUnavailable,
    credentials_of,
    shadow_identity,
    token_expiry,
)
from strangler_proxy.loader import RouteFileError, parse_route_text
from strangler_proxy.nginx.render import NginxOptions, render_nginx
from strangler_proxy.shadow import DiffStore, ShadowJob, ShadowRunner
from strangler_proxy.spec import IdentitySettings
from tests.strangler_proxy.upstream_servers import UpstreamServer

BASE = """\
upstreams:
  monolith: http://127.0.0.1:{port}
  catalog: http://127.0.0.1:8001
  orders: http://127.0.0.1:8002
monolith: monolith
routes:
  - prefix: /api/products/
    mode: canary
    weight: 50
    service: catalog
  - prefix: /api/orders/
    mode: service
    service: orders
settings:
"""


def table_with(identity: str, port: int = 8000):
    return parse_route_text(BASE.format(port=port) + textwrap.indent(textwrap.dedent(identity), "  "),
                            source="routes.yaml")


def test_settings_identity_is_read_and_checked():
    table = table_with("identity:\n  upstreams: [catalog]\n  cookies: [sessionid, remember]\n  cache_ttl: 0\n")
    assert table.settings.identity == IdentitySettings(upstreams=("catalog",), cookies=("sessionid", "remember"),
                                                       cache_ttl=0.0)
    assert parse_route_text(BASE.format(port=8000) + "  route_headers: true\n", source="r").settings.identity \
        == IdentitySettings()
    for bad, message in (("upstreams: [monolith]", "not a service upstream"), ("upstreams: [nope]", "not a service"),
                         ("cookies: ['bad-name']", "invalid cookie name"), ("endpoint: /a/../b/", "canonical"),
                         ("header: 'X Bad'", "invalid value"), ("cache_ttl: -1", "must be"),
                         ("colour: red", "unknown")):
        with pytest.raises(RouteFileError, match=message):
            table_with(f"identity:\n  {bad}\n")


def test_nginx_resolves_for_identity_upstreams_and_always_strips_the_client_header(tmp_path):
    text = render_nginx(table_with("identity:\n  upstreams: [catalog]\n"),
                        NginxOptions(runtime_dir=tmp_path, listen="127.0.0.1:9999", user=None))
    assert "auth_request \"/\\\\strangler-identity\";" in text
    assert "set $strangler_identity_for $strangler_pick_r0;" in text  # the canary pick decides
    assert "set $strangler_identity_for orders;" not in text  # orders gets no identity...
    locations = text.split("location ")
    proxying = [block for block in locations if "proxy_pass " in block and "strangler-identity\" {" not in block]
    assert proxying and all("proxy_set_header X-Strangler-Identity " in block for block in proxying)  # ...no forgery
    assert "proxy_cache_path " in text and "keys_zone=strangler_identity" in text
    off = render_nginx(table_with("identity:\n  cache_ttl: 0\n"),
                       NginxOptions(runtime_dir=tmp_path, listen="127.0.0.1:9999", user=None))
    assert "auth_request" not in off and "proxy_set_header X-Strangler-Identity \"\";" in off


def test_credentials_are_the_authorization_header_and_the_credential_cookies():
    settings = IdentitySettings(upstreams=("catalog",))
    assert credentials_of(((b"Cookie", b"csrftoken=x; strangler_uid=y"),), settings) is None
    assert credentials_of(((b"Cookie", b"sessionid="),), settings) is None
    session = credentials_of(((b"Cookie", b"a=1; sessionid=abc"),), settings)
    assert session == credentials_of(((b"Cookie", b"sessionid=abc; b=2"),), settings)
    assert credentials_of(((b"Authorization", b"Basic eDp5"),), settings) != session
    assert credentials_of(((b"cookie", b"a=1"), (b"cookie", b"sessionid=abc")), settings) == session  # HTTP/2


def test_the_cache_is_bounded_and_expires():
    cache = IdentityCache()
    for i in range(5):
        cache.put(bytes([i]), f"t{i}", deadline=100.0, size=3)
    assert [cache.get(bytes([i]), now=1.0) for i in range(5)] == [None, None, "t2", "t3", "t4"]
    assert cache.get(bytes([4]), now=100.0) is None and len(cache.entries) == 2


def jwt_like(exp: float) -> str:
    payload = base64.urlsafe_b64encode(json.dumps({"exp": exp}).encode()).decode().rstrip("=")
    return f"h.{payload}.s"


class FakeIdentityEndpoint:
    """Answers GET /sync/identity/ with a JWT-shaped identity naming the Authorization it got; counts calls."""

    def __init__(self, status: int = 200):
        self.calls: list[dict] = []
        self.status = status
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                owner.calls.append({"path": self.path, "authorization": self.headers.get("Authorization")})
                token = jwt_like(time.time() + 60) + "." + str(len(owner.calls))
                self.send_response(owner.status)
                self.send_header("X-Strangler-Identity", token)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint():
    server = FakeIdentityEndpoint()
    yield server
    server.close()


def attach(addon: IdentityAddon, table, upstream: str, headers: dict[str, str]):
    flow = tflow.tflow()
    for name, value in headers.items():
        flow.request.headers[name] = value
    asyncio.run(addon.attach(flow, table, upstream))
    return flow.request.headers.get("X-Strangler-Identity")


def test_the_addon_asks_once_per_credentials_and_upstream_within_the_ttl(endpoint):
    table = table_with("identity:\n  upstreams: [catalog, orders]\n  cache_ttl: 30\n", port=endpoint.port)
    addon = IdentityAddon()
    alice = {"Authorization": "Basic YWxpY2U6cHc="}
    first = attach(addon, table, "catalog", alice)
    assert first and attach(addon, table, "catalog", alice) == first
    assert endpoint.calls == [{"path": "/sync/identity/?audience=catalog", "authorization": alice["Authorization"]}]
    assert attach(addon, table, "orders", alice) != first  # another audience: another identity
    assert attach(addon, table, "catalog", {}) is None  # no credentials: not asked, anonymous
    assert attach(addon, table, "monolith", alice) is None  # not an identity upstream
    assert len(endpoint.calls) == 2 and addon.lookups["hit"] == 1


def test_without_cache_every_request_asks(endpoint):
    table = table_with("identity:\n  upstreams: [catalog]\n  cache_ttl: 0\n", port=endpoint.port)
    addon = IdentityAddon()
    for _ in range(3):
        attach(addon, table, "catalog", {"Authorization": "Basic eDp5"})
    assert len(endpoint.calls) == 3


def test_a_cached_identity_never_outlives_its_token():
    assert token_expiry(jwt_like(1234.0)) == 1234.0 and token_expiry("garbage") is None


def test_no_answer_or_a_bad_one_is_unavailable(endpoint):
    table = table_with("identity:\n  upstreams: [catalog]\n  timeout: 2\n", port=endpoint.port)
    endpoint.status = 500
    with pytest.raises(IdentityUnavailable, match="answered 500"):
        attach(IdentityAddon(), table, "catalog", {"Authorization": "Basic eDp5"})
    endpoint.close()
    with pytest.raises(IdentityUnavailable, match="identity endpoint"):
        attach(IdentityAddon(), table, "catalog", {"Authorization": "Basic eDp5"})


def test_shadow_copies_to_an_identity_upstream_carry_the_signed_identity_and_fail_closed(endpoint):
    """Both runner paths (the diff endpoint's threads, mitmproxy's event loop) share one cached lookup; a copy
    whose identity cannot be had is never sent (counted as an error)."""
    catalog = UpstreamServer("catalog").start()
    table = table_with("identity:\n  upstreams: [catalog]\n  timeout: 10\n", port=endpoint.port)
    runner = ShadowRunner(store=DiffStore(), identity=IdentityResolver())

    def job(authorization: str) -> ShadowJob:
        return ShadowJob(
            route="/api/products/", rules=table.routes[0].diff, method="GET", path="/api/products/",
            headers=(("Authorization", authorization),), body=None, monolith="monolith", primary="monolith",
            shadow="catalog", upstream_urls={"monolith": f"http://127.0.0.1:{endpoint.port}", "catalog": catalog.url},
            primary_response=HttpResponseData.from_pairs(status=200, header_pairs=(), body=b"{}"),
            identity=shadow_identity(table),
        )

    async def on_the_loop(shadow_job: ShadowJob) -> None:
        runner.submit_async(shadow_job, AsyncUpstreamClient())
        while runner.pending:
            await asyncio.sleep(0.01)

    try:
        runner.run(job("Basic YWxpY2U6cHc="))
        asyncio.run(on_the_loop(job("Basic YWxpY2U6cHc=")))
        lookups = [call for call in endpoint.calls if call["path"].startswith("/sync/identity/")]
        assert lookups == [{"path": "/sync/identity/?audience=catalog", "authorization": "Basic YWxpY2U6cHc="}]
        tokens = [request["headers"].get("x-strangler-identity") for request in catalog.received()]
        assert len(tokens) == 2 and tokens[0] and tokens[0] == tokens[1]  # the endpoint's answer, cached once
        endpoint.status = 500
        asyncio.run(on_the_loop(job("Basic Ym9iOnB3")))
        with pytest.raises(IdentityUnavailable):
            runner.run(job("Basic Y2Fyb2w6cHc="))
        assert len(catalog.received()) == 2  # neither copy went out without its identity
        assert runner.store.summary()["routes"]["/api/products/"]["errors"] == 1  # the loop's (run() raises)
    finally:
        runner.shutdown()
        catalog.stop()
