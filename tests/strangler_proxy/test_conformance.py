"""Conformance: one table of requests through the pure decide(), the real nginx plane and the mitmproxy plane.

Every row must reach the same upstream process (or the same 400/502) in every plane, with real upstream servers
that answer with their own name. Also: nginx's split_clients agrees with murmur.in_canary on 10,000 keys.
"""

from __future__ import annotations

import contextlib
import json
import time

import pytest

from servicekit.trace_context import traceparent_parse
from strangler_proxy.loader import load_route_file, parse_route_text
from strangler_proxy.murmur import in_canary
from strangler_proxy.nginx.control import NginxInstance
from strangler_proxy.nginx.render import NginxOptions
from strangler_proxy.override import override_token
from strangler_proxy.routing import OpsHidden, PathRejected, RequestInfo, decide, parse_cookie_header
from strangler_proxy.spec import MIRROR_PRIMARY_HEADER, MIRROR_ROUTE_HEADER, MIRROR_SHADOW_HEADER
from tests.strangler_proxy.planes import (
    Client,
    mitmproxy_available,
    start_mitmdump,
    start_nginx,
    stop_process,
    wait_for_port,
)
from tests.strangler_proxy.raw_http import exchange_with_headers
from tests.strangler_proxy.upstreams import NamedUpstream, free_port

pytestmark = pytest.mark.nginx

SECRET = "conformance-secret"
UNAVAILABLE = 502  # no upstream could answer and there is no fallback

ROUTES = """\
upstreams:
  monolith: {monolith}
  catalog: {catalog}
  orders: {orders}
  dead: http://127.0.0.1:{dead_port}
monolith: monolith
settings:
  diff_endpoint: 127.0.0.1:{diff_port}
  exposed_ops: [/metrics]
sticky:
  set_cookie: false  # rows without a key stick on the address (test_conformance_sticky covers the cookie)
routes:
  - prefix: /api/products/
    mode: canary
    weight: 50
    service: catalog
    fallback: true
  - path: /api/products/featured
    mode: service
    service: catalog
  - prefix: /api/products/
    methods: [POST, PUT]
    mode: monolith
    service: catalog
  - prefix: /api/categories/
    mode: canary
    weight: 10
    service: catalog
  - prefix: /api/reviews/
    mode: canary
    weight: 0
    service: catalog
  - prefix: /api/cart/
    mode: canary
    weight: 100
    service: orders
  - prefix: /api/orders/
    mode: service
    service: orders
    timeout: 5
  - prefix: /api/orders/export/
    mode: service
    service: dead
    fallback: true
  - prefix: /api/search/
    mode: shadow
    service: catalog
  - prefix: /api/
    methods: [DELETE]
    mode: service
    service: orders
  - pattern: /api/products/*/rating/
    mode: service
    service: orders
  - pattern: /api/*/export.csv
    methods: [GET, HEAD]
    mode: service
    service: catalog
    fallback: true
  - pattern: /shop/*/*/
    mode: canary
    weight: 50
    service: catalog
"""

# (method, raw request target, headers)
PATH_ROWS = [
    ("GET", "/", {}),
    ("GET", "/api/orders/1", {}),
    ("POST", "/api/orders/", {}),
    ("GET", "/api//orders//1", {}),
    ("GET", "/api/./orders/./1", {}),
    ("GET", "/api/x/../orders/1", {}),
    ("GET", "/api/%6frders/1", {}),
    ("GET", "/%61pi/orders/", {}),
    ("GET", "/api/%2e%2e/api/orders/", {}),
    ("GET", "/api/%2E%2E/api/orders/", {}),
    ("GET", "/api/orders/..", {}),
    ("GET", "/api/orders/.", {}),
    ("GET", "/api/orders/1?next=/admin/&q=%2f", {}),
    ("GET", "/api/orders%2f1", {}),
    ("GET", "/api/orders%2F1", {}),
    ("GET", "/api/orders/%00", {}),
    ("GET", "/api/orders\\1", {}),
    ("GET", "/api/orders/%5c1", {}),
    ("GET", "/api/orders/%zz", {}),
    ("GET", "/../api/orders/", {}),
    ("GET", "/api/../../api/orders/", {}),
    ("GET", "/api/orders/%2e%2e/%2e%2e/%2e%2e/x", {}),
    ("GET", "/API/orders/", {}),
    ("GET", "/api/orders", {}),
    ("GET", "/api/orders%252f1", {}),
    ("GET", "/api/x/.%2E/orders/1", {}),
    ("GET", "/api/orders/%2e/1", {}),
    ("GET", "/api/orders/%252e%252e/1", {}),
    ("GET", "/api/orders/;x=1", {}),
    ("GET", "/api/orders/%3f1", {}),
    ("GET", "/api/orders/%23x", {}),
    ("GET", "/api/orders/%20/", {}),
    ("GET", "/api/orders/caf%C3%A9", {}),
    ("GET", "/api/orders/%FF%FE", {}),
    ("GET", "/api/ord%65rs/export/", {}),
    ("GET", "//api/orders/", {}),
    ("GET", "/./api/orders/", {}),
    ("GET", "/api/orders/x/..%2f..%2fadmin", {}),
    ("GET", "/api/orders/%2", {}),
    ("GET", "/api/orders/%", {}),
    ("GET", "/api/orders/%%30%30", {}),
    ("GET", "/api/products/featured", {}),
    ("GET", "/api/products/featured?page=2", {}),
    ("GET", "/api/products//featured", {}),
    ("POST", "/api/products/featured", {}),
    ("GET", "/api/products/featured/", {"X-User-Id": "u-7"}),
    ("POST", "/api/products/1", {}),
    ("PUT", "/api/products/1", {}),
    ("DELETE", "/api/products/1", {}),
    ("DELETE", "/api/anything/1", {}),
    ("DELETE", "/static/x", {}),
    ("PATCH", "/api/orders/1", {}),
    ("HEAD", "/api/orders/1", {}),
    ("OPTIONS", "/api/orders/1", {}),
    ("GET", "/api/reviews/", {"X-User-Id": "u-1"}),
    ("GET", "/api/cart/", {"X-User-Id": "u-1"}),
    ("GET", "/api/search/?q=shoe", {}),
    ("POST", "/api/search/", {}),
    ("GET", "/api/orders/export/", {}),
    ("HEAD", "/api/orders/export/x", {}),
    ("POST", "/api/orders/export/", {}),
    ("DELETE", "/api/orders/export/", {}),
    ("GET", "/api/products/../orders/export/", {}),
    ("GET", "/api/products/7/rating/", {}),
    ("POST", "/api/products/7/rating/", {}),
    ("DELETE", "/api/products/7/rating/x", {}),
    ("GET", "/api/products/7/ratings", {"X-User-Id": "u-3"}),
    ("GET", "/api/products//rating/", {"X-User-Id": "u-3"}),
    ("GET", "/api/products/%37/rating/", {}),
    ("GET", "/api/products/a%2fb/rating/", {}),
    ("GET", "/api/products/featured/rating/", {}),
    ("GET", "/api/orders/export.csv", {}),
    ("HEAD", "/api/orders/export.csv?all=1", {}),
    ("GET", "/api/orders/exportXcsv", {}),
    ("POST", "/api/orders/export.csv", {}),
    ("DELETE", "/api/x/export.csv", {}),
    ("GET", "/api/x/y/export.csv", {}),
    ("GET", "/api/orders/export/export.csv", {}),
    ("GET", "/shop/a/b/", {"X-User-Id": "u-1"}),
    ("GET", "/shop/a/b/c", {"X-User-Id": "u-2"}),
    ("GET", "/shop/a/", {"X-User-Id": "u-2"}),
    ("PATCH", "/shop/x/y/z", {"Cookie": "strangler_uid=p1"}),
    ("GET", "http://evil.example/api/orders/", {}),
    ("GET", "http://127.0.0.1/api/orders/", {}),
    ("CONNECT", "evil.example:443", {}),
    ("OPTIONS", "*", {}),
    ("PROPFIND", "/api/orders/", {}),
    # Methods are case-sensitive: a lowercase or mixed-case one is malformed (400) in every plane, never
    # routed as its uppercase namesake (mitmproxy uppercases request.method; the addon decides on the raw one).
    ("get", "/api/orders/1", {}),
    ("Get", "/", {}),
    ("gET", "/api/products/featured", {}),
    ("post", "/api/orders/", {}),
    ("delete", "/api/anything/1", {}),
    ("head", "/api/orders/export/x", {}),
    ("options", "/api/orders/1", {}),
    ("get", "/api/products/7/rating/", {}),
    ("connect", "/api/orders/", {}),
    ("connect", "evil.example:443", {}),
]

# Canary stickiness: the cookie beats the header beats the client address, at weights 10 and 50.
STICKY_ROWS = [
    (method, path, headers)
    for i in range(24)
    for method, path, headers in (
        ("GET", f"/api/products/{i}", {"Cookie": f"strangler_uid=user-{i}"}),
        ("GET", f"/api/categories/?page={i}", {"X-User-Id": f"member-{i}"}),
        ("GET", f"/api/products/{i}", {"Cookie": f"theme=dark; strangler_uid=c{i}", "X-User-Id": f"h{i}"}),
        ("HEAD", f"/api/categories/{i}", {"Cookie": f"strangler_uid=k{i * 7}"}),
    )
] + [
    ("GET", "/api/products/", {}),
    ("GET", "/api/categories/", {"Cookie": "strangler_uid="}),
] + [
    ("GET", "/api/products/", {"Cookie": f"strangler_uid=first{i}; strangler_uid=second{i}"}) for i in range(8)
]

_GOOD = {"catalog": override_token(SECRET, "catalog"), "monolith": override_token(SECRET, "monolith"),
         "orders": override_token(SECRET, "orders")}
_SAFE_CATALOG = override_token(SECRET, "catalog", methods="safe")
OVERRIDE_ROWS = [
    ("GET", "/api/reviews/", {"X-Strangler-Force": _GOOD["catalog"]}),
    ("GET", "/api/orders/1", {"X-Strangler-Force": _GOOD["monolith"]}),
    ("POST", "/api/products/1", {"X-Strangler-Force": _GOOD["orders"]}),
    ("GET", "/nowhere", {"X-Strangler-Force": _GOOD["catalog"]}),
    ("GET", "/api/orders/export/", {"X-Strangler-Force": _GOOD["monolith"]}),
    ("GET", "/api/reviews/", {"X-Strangler-Force": "catalog"}),
    ("GET", "/api/reviews/", {"X-Strangler-Force": _GOOD["catalog"][:-1] + "0"}),
    ("GET", "/api/reviews/", {"X-Strangler-Force": override_token("other-secret", "catalog")}),
    ("GET", "/api/reviews/", {"X-Strangler-Force": override_token(SECRET, "evil")}),
    ("GET", "/api/orders/1", {"X-Strangler-Force": ""}),
    ("get", "/api/reviews/", {"X-Strangler-Force": _GOOD["catalog"]}),  # a valid override does not rescue it
    # Scoped, expiring tokens compared exactly (issue 11): case, method class, expiry, forged scope.
    ("GET", "/api/reviews/", {"X-Strangler-Force": _GOOD["catalog"].upper()}),
    ("GET", "/api/reviews/", {"X-Strangler-Force": _GOOD["catalog"].replace("v1.catalog", "V1.catalog")}),
    ("GET", "/api/reviews/", {"X-Strangler-Force": _SAFE_CATALOG}),
    ("HEAD", "/api/reviews/", {"X-Strangler-Force": _SAFE_CATALOG}),
    ("POST", "/api/reviews/", {"X-Strangler-Force": _SAFE_CATALOG}),
    ("DELETE", "/api/orders/1", {"X-Strangler-Force": override_token(SECRET, "monolith", methods="safe")}),
    ("GET", "/api/reviews/", {"X-Strangler-Force": _SAFE_CATALOG.replace(".safe.", ".any.")}),
    ("GET", "/api/reviews/", {"X-Strangler-Force": override_token(SECRET, "catalog", now=time.time() - 4 * 3600)}),
]

# Ops paths: hidden (404) unless settings.exposed_ops lists them (here /metrics), by the normalised path.
OPS_ROWS = [
    ("GET", "/admin/", {}),
    ("GET", "/admin", {}),
    ("GET", "/%61dmin/login/", {}),
    ("GET", "//sync//checksums/product/?buckets=100000", {}),
    ("GET", "/api/../sync/relay/", {}),
    ("POST", "/admin/login/", {}),
    ("GET", "/admin/", {"X-Strangler-Force": _SAFE_CATALOG}),
    ("GET", "/adminx/", {}),
    ("GET", "/synced", {}),
    ("GET", "/metrics", {}),
]

ROWS = PATH_ROWS + STICKY_ROWS + OVERRIDE_ROWS + OPS_ROWS


@pytest.fixture(scope="module")
def environment(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("conformance")
    with contextlib.ExitStack() as stack:
        upstreams = {name: NamedUpstream(name) for name in ("monolith", "catalog", "orders", "diff")}
        for upstream in upstreams.values():
            stack.callback(upstream.close)
        route_file = workdir / "routes.yaml"
        route_file.write_text(ROUTES.format(
            monolith=upstreams["monolith"].url, catalog=upstreams["catalog"].url, orders=upstreams["orders"].url,
            dead_port=free_port(), diff_port=upstreams["diff"].port,
        ))
        table = load_route_file(route_file)
        planes = {"nginx": free_port()}
        nginx_runtime = workdir / "nginx"
        stack.callback(NginxInstance(NginxOptions(runtime_dir=nginx_runtime)).stop)  # also after a failed start
        start_nginx(table, nginx_runtime, planes["nginx"], override_secret=SECRET)
        if mitmproxy_available():
            planes["mitmproxy"] = free_port()
            stack.callback(stop_process, start_mitmdump(route_file, workdir, planes["mitmproxy"],
                                                        override_secret=SECRET))
        clients = {plane: Client(port) for plane, port in planes.items()}
        for client in clients.values():
            stack.callback(client.close)
        yield table, upstreams, clients


def expected_outcome(table, method: str, target: str, headers: dict[str, str]) -> tuple[int, str | None, str | None]:
    """(status, upstream that answers, route label) according to the pure core."""
    lowered = {k.lower(): v for k, v in headers.items()}
    request = RequestInfo(method=method, path=target, headers=lowered,
                          cookies=parse_cookie_header(lowered.get("cookie", "")), client_addr="127.0.0.1")
    try:
        decision = decide(table, request, override_secret=SECRET)
    except PathRejected:
        return 400, None, None
    except OpsHidden:
        return 404, None, None
    served = decision.primary
    if served == "dead":  # nothing listens there: the fallback answers, or the plane's 502
        if decision.fallback is None:
            return UNAVAILABLE, None, decision.route_label
        served = decision.fallback
    return 200, served, decision.route_label


def test_every_row_reaches_the_same_upstream_in_every_plane(environment):
    table, _upstreams, clients = environment
    mismatches = []
    for method, target, headers in ROWS:
        want = expected_outcome(table, method, target, headers)
        for plane, client in clients.items():
            reply = client.send(method, target, headers)
            got = (reply.status, reply.served_by, reply.route_header if reply.status not in (400, 404) else None)
            if reply.status in (502, 503, 504):  # nginx says 502; a plane with an open breaker may say 503
                got = (UNAVAILABLE, None, reply.route_header)
            if got != want:
                mismatches.append(f"{plane}: {method} {target} {headers}: want {want}, got {got}")
    assert not mismatches, "\n".join(mismatches)


def test_canary_rows_cover_both_sides(environment):
    """The sticky rows are only meaningful if the weights split them both ways."""
    table, _upstreams, _clients = environment
    served = {expected_outcome(table, *row)[1] for row in STICKY_ROWS if "/api/products/" in row[1]}
    assert served == {"catalog", "monolith"}
    served = {expected_outcome(table, *row)[1] for row in STICKY_ROWS if "/api/categories/" in row[1]}
    assert served == {"catalog", "monolith"}


@pytest.mark.parametrize(
    ("host", "status"),
    [("127.0.0.1", {200}), ("LOCALHOST:8080", {200}), ("localhost", {200}), ("evil.example", {421}),
     ("127.0.0.1.evil.example", {421}), ("", {400, 421})],  # an empty Host is invalid HTTP/1.1 for nginx
)
def test_only_configured_host_names_are_served(environment, host, status):
    _table, upstreams, clients = environment
    for plane, client in clients.items():
        before = sum(len(u.requests) for u in upstreams.values())
        reply = client.send("GET", "/api/orders/1", {"Host": host})
        assert reply.status in status, (plane, host, reply.status, reply.body[:200])
        contacted = sum(len(u.requests) for u in upstreams.values()) - before
        assert contacted == (1 if reply.status == 200 else 0), (plane, host)
        if reply.status == 421:
            assert json.loads(reply.body)["error"]["code"] == "unknown_host", plane


def test_route_and_upstream_headers_match_the_decision(environment):
    table, _upstreams, clients = environment
    for plane, client in clients.items():
        for method, target, headers in [("GET", "/api/orders/1", {}), ("GET", "/x", {}),
                                        ("GET", "/api/products/featured", {})]:
            status, served, label = expected_outcome(table, method, target, headers)
            reply = client.send(method, target, headers)
            assert (reply.status, reply.upstream_header, reply.route_header) == (status, served, label), plane


def test_override_header_never_reaches_an_upstream(environment):
    _table, upstreams, clients = environment
    for plane, client in clients.items():
        for value in (_GOOD["catalog"], "catalog", "junk"):
            request_id = f"force-{plane}-{len(value)}"
            client.send("GET", "/api/reviews/", {"X-Strangler-Force": value, "X-Request-ID": request_id})
            seen = [r for u in upstreams.values() for r in u.requests if r["headers"].get("x-request-id") == request_id]
            assert seen, f"{plane}: no upstream saw {request_id}"
            assert all("x-strangler-force" not in r["headers"] for r in seen), plane


def test_request_id_is_propagated_or_generated(environment):
    _table, upstreams, clients = environment
    for plane, client in clients.items():
        reply = client.send("GET", "/api/orders/7", {"X-Request-ID": f"given-{plane}"})
        assert any(r["headers"].get("x-request-id") == f"given-{plane}" for r in upstreams["orders"].requests)
        assert [v for k, v in reply.header_list if k.lower() == "x-request-id"] == [f"given-{plane}"], plane
        before = len(upstreams["orders"].requests)
        reply = client.send("GET", "/api/orders/8", {"X-Request-ID": "bad id\twith spaces"})
        generated = upstreams["orders"].requests[before]["headers"].get("x-request-id")
        assert generated and generated != "bad id\twith spaces", plane
        assert reply.headers.get("x-request-id") == generated, plane
        # answers the plane gives itself carry one too
        for method, target, headers in (("POST", "/api/orders/export/", {}), ("GET", "/a%2fb", {}),
                                        ("GET", "/x", {"Host": "evil.example"})):
            reply = client.send(method, target, {"X-Request-ID": f"own-{plane}", **headers})
            assert reply.status >= 400 and reply.headers.get("x-request-id") == f"own-{plane}", (plane, target)


def test_traceparent_is_passed_on_or_started(environment):
    """Both planes: a valid W3C traceparent reaches the upstream unchanged; none or an invalid one, a new trace."""
    _table, upstreams, clients = environment
    given = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    for plane, client in clients.items():
        started = set()
        for n, header in enumerate((given, None, "garbage", "00-" + "0" * 32 + "-00f067aa0ba902b7-01",
                                    "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01")):
            request_id = f"trace-{plane}-{n}"
            client.send("GET", f"/api/orders/{n}", {"X-Request-ID": request_id,
                                                    **({"traceparent": header} if header else {})})
            [seen] = [r["headers"]["traceparent"] for r in upstreams["orders"].requests
                      if r["headers"].get("x-request-id") == request_id]
            if header == given:
                assert seen == given, plane
            else:
                context = traceparent_parse(seen)
                assert context is not None and context.traceparent == seen, (plane, header, seen)
                started.add(context.trace_id)
        assert len(started) == 4 and "4bf92f3577b34da6a3ce929d0e0e4736" not in started, plane


def test_nginx_mirrors_shadow_routes_to_the_diff_endpoint(environment):
    _table, upstreams, clients = environment
    clients["nginx"].send("GET", "/api/search/?q=mirror-me", {"X-Request-ID": "mirror-1"})
    clients["nginx"].send("POST", "/api/search/?q=not-me", {"X-Request-ID": "mirror-2"})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        mirrored = [r for r in upstreams["diff"].requests if r["headers"].get("x-request-id") == "mirror-1"]
        if mirrored:
            break
        time.sleep(0.05)
    assert len(mirrored) == 1
    headers = mirrored[0]["headers"]
    assert mirrored[0]["path"] == "/api/search/?q=mirror-me"
    assert headers[MIRROR_ROUTE_HEADER.lower()] == "/api/search/"
    assert headers[MIRROR_PRIMARY_HEADER.lower()] == "monolith"
    assert headers[MIRROR_SHADOW_HEADER.lower()] == "catalog"
    # unsafe methods are not mirrored unless the route says so
    assert not [r for r in upstreams["diff"].requests if r["headers"].get("x-request-id") == "mirror-2"]


CANARY_ANSWERS = """\
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {run}/client_body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    server {{ listen 127.0.0.1:{stable}; location / {{ add_header X-Upstream-Name monolith; return 204; }} }}
    server {{ listen 127.0.0.1:{canary}; location / {{ add_header X-Upstream-Name catalog; return 204; }} }}
}}
"""


@pytest.mark.slow
def test_nginx_split_clients_equals_in_canary_on_10000_keys(tmp_path):
    """A rendered 37% canary: which side each of 10,000 sticky keys lands on, asked of real nginx."""

    stable, canary, port = free_port(), free_port(), free_port()
    answers_dir = tmp_path / "answers"
    answers_dir.mkdir()
    (answers_dir / "nginx.conf").write_text(CANARY_ANSWERS.format(run=answers_dir, stable=stable, canary=canary))
    table = parse_route_text(
        f"upstreams:\n  monolith: http://127.0.0.1:{stable}\n  catalog: http://127.0.0.1:{canary}\n"
        "monolith: monolith\nroutes:\n  - prefix: /k/\n    mode: canary\n    weight: 37\n    service: catalog\n",
        source="canary37.yaml",
    )
    with contextlib.ExitStack() as stack:
        answers = NginxInstance(NginxOptions(runtime_dir=answers_dir))
        stack.callback(answers.stop)
        answers.start()
        stack.callback(NginxInstance(NginxOptions(runtime_dir=tmp_path / "proxy")).stop)
        start_nginx(table, tmp_path / "proxy", port, override_secret=None)
        client = Client(port)
        stack.callback(client.close)
        wait_for_port(stable)
        keys = [f"user-{i}" for i in range(9000)] + [f"{i:08x}-Ü-{i * 7919}" for i in range(1000)]
        mismatched, in_canary_count = [], 0
        for key in keys:
            # http.client would send str headers as latin-1; the planes see UTF-8 bytes from real clients
            by_cookie = client.send("GET", "/k/", {"Cookie": f"strangler_uid={key}".encode()}).served_by
            want = "catalog" if in_canary(key, 37) else "monolith"
            in_canary_count += want == "catalog"
            if by_cookie != want:
                mismatched.append(key)
        assert not mismatched, f"{len(mismatched)} keys differ, e.g. {mismatched[:5]}"
        assert 0.35 < in_canary_count / len(keys) < 0.39


def test_request_bodies_and_query_strings_arrive_unchanged(environment):
    _table, upstreams, clients = environment
    body = "ünïcode & bytes " * 200
    for plane, client in clients.items():
        request_id = f"body-{plane}"
        reply = client.send("PUT", "/api/orders/5?x=1&y=%2F&z=caf%C3%A9", {"X-Request-ID": request_id,
                                                                           "Content-Type": "text/plain"},
                            body=body.encode())
        assert reply.status == 200, plane
        seen = next(r for r in upstreams["orders"].requests if r["headers"].get("x-request-id") == request_id)
        assert seen["body"] == body and seen["method"] == "PUT", plane
        assert seen["path"] == "/api/orders/5?x=1&y=%2F&z=caf%C3%A9", plane


def test_hidden_ops_paths_answer_the_same_json_404_on_every_plane(environment):
    _table, upstreams, clients = environment
    before = len(upstreams["monolith"].requests)
    for client in clients.values():
        reply = client.send("GET", "/sync/checksums/product/?buckets=5")
        assert reply.status == 404 and reply.headers["content-type"].startswith("application/json")
        assert json.loads(reply.body) == {"error": {"code": "not_found", "message": "Not found.", "details": {}}}
    assert len(upstreams["monolith"].requests) == before


# Repeated override headers (issue 11): nginx 1.22 reads only the first line, later versions join the lines with ", ",
# the mitmproxy plane joins them too; every plane reads the token up to the first comma (override.override_element).
REPEATED_OVERRIDE_ROWS = [
    ("first-valid", [_GOOD["catalog"], "junk"]),
    ("second-valid", ["junk", _GOOD["catalog"]]),
    ("first-empty", ["", _GOOD["catalog"]]),
    ("one-line-token-then-junk", [_GOOD["catalog"] + ", junk"]),
    ("two-valid-tokens", [_GOOD["orders"], _GOOD["catalog"]]),
]


@pytest.mark.parametrize(("name", "values"), REPEATED_OVERRIDE_ROWS, ids=[row[0] for row in REPEATED_OVERRIDE_ROWS])
def test_repeated_override_headers_decide_alike_on_every_plane(environment, name, values):
    table, _upstreams, clients = environment
    want = expected_outcome(table, "GET", "/api/reviews/", {"X-Strangler-Force": ", ".join(values)})
    lines = b"".join(b"X-Strangler-Force: " + value.encode() + b"\r\n" for value in values)
    for plane, client in clients.items():
        raw = b"GET /api/reviews/ HTTP/1.1\r\nHost: 127.0.0.1\r\n" + lines + b"Connection: close\r\n\r\n"
        status, headers, _ = exchange_with_headers(client.port, raw)
        assert (status, headers.get("x-upstream-name")) == want[:2], (plane, name)


def test_repeated_override_rows_are_not_all_alike(environment):
    """The rows above mean something only if the first line's token decides (forced) and a later one does not."""
    table = environment[0]
    served = {name: expected_outcome(table, "GET", "/api/reviews/", {"X-Strangler-Force": ", ".join(values)})[1]
              for name, values in REPEATED_OVERRIDE_ROWS}
    assert served["first-valid"] == served["one-line-token-then-junk"] == "catalog" != served["second-valid"]
    assert served["two-valid-tokens"] == "orders"
