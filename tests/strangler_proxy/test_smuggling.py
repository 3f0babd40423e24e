"""Smuggling and framing suite: one table of raw byte sequences sent over raw sockets to both traffic planes.

Each row is sent on a fresh connection to the real nginx plane and the real mitmproxy plane, in front of
recording upstreams that parse what they receive with a strict HTTP/1.1 parser (h11). A row passes when the
upstream it names received exactly one well-framed request (the intended method, path, body, header bytes;
no bytes after it on the connection) and no other upstream received anything; or, for rows a plane may
refuse, when nothing reached any upstream and the client got a 4xx (or nginx's 501 for an unknown coding).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from strangler_proxy.loader import load_route_file
from tests.strangler_proxy.planes import start_mitmdump, start_nginx, stop_process
from tests.strangler_proxy.raw_http import RecordingUpstream, exchange
from tests.strangler_proxy.upstreams import free_port

pytestmark = pytest.mark.nginx

SECRET = "smuggling-secret"
SETTLE = 0.5  # seconds to wait for bytes a plane might still send after the answer (a smuggled request)

ROUTES = """\
upstreams:
  monolith: {monolith}
  catalog: {catalog}
monolith: monolith
settings:
  diff_endpoint: 127.0.0.1:{diff_port}
routes:
  - prefix: /api/products/
    mode: service
    service: catalog
  - prefix: /api/cart/
    mode: monolith
"""


@dataclass(frozen=True)
class Row:
    name: str
    raw: bytes
    to: str | None  # the upstream that must receive it; None: nothing may be forwarded (a 4xx answer)
    method: bytes = b"POST"
    target: bytes = b""
    body: bytes = b""
    headers: dict[bytes, bytes] = field(default_factory=dict)  # exact bytes the upstream must see
    may_refuse: bool = False  # a 4xx with nothing forwarded is also right


def _head(line: bytes, *headers: bytes) -> bytes:
    return line + b"\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"


def _chunked(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload)


SMUGGLED_GET = b"GET /api/products/5/smuggled-marker-404/ HTTP/1.1\r\nHost: evil.example\r\n\r\n"
SMUGGLED_DELETE = b"DELETE /api/products/1/ HTTP/1.1\r\nHost: evil.example\r\n\r\n"
CLEAN = {b"x-strangler-force": None, b"x-strangler-shadow": None, b"x-strangler-mirror-route": None,
         b"transfer-encoding": None}

ROWS = [
    # Reproduction 1: TE stripped as hop-by-hop, body forwarded with no length -> the chunk is a second request.
    Row("te-chunked-into-monolith",
        _head(b"POST /api/cart/items/ HTTP/1.1", b"Host: localhost", b"Transfer-Encoding: chunked")
        + _chunked(SMUGGLED_GET),
        to="monolith", target=b"/api/cart/items/", body=SMUGGLED_GET),
    Row("connection-names-content-length",  # refused now (Connection may name hop-by-hop headers only)
        _head(b"POST /api/cart/items/ HTTP/1.1", b"Host: localhost", b"Connection: Content-Length",
              b"Content-Length: %d" % len(SMUGGLED_GET)) + SMUGGLED_GET,
        to="monolith", target=b"/api/cart/items/", body=SMUGGLED_GET, may_refuse=True),
    # Reproduction 2: a character latin-1 cannot hold made the service path fail and mitmproxy forward the flow.
    Row("euro-header-te-into-service",
        _head(b"POST /api/products/ HTTP/1.1", b"Host: localhost", b"X-Note: \xe2\x82\xac",
              b"Transfer-Encoding: chunked") + _chunked(SMUGGLED_DELETE),
        to="catalog", target=b"/api/products/", body=SMUGGLED_DELETE, headers={b"x-note": b"\xe2\x82\xac"}),
    Row("raw-ff-header-into-service",
        _head(b"POST /api/products/ HTTP/1.1", b"Host: localhost", b"X-Note: caf\xff",
              b"Transfer-Encoding: chunked") + _chunked(SMUGGLED_DELETE),
        to="catalog", target=b"/api/products/", body=SMUGGLED_DELETE, headers={b"x-note": b"caf\xff"}),
    Row("utf8-header-bytes-unchanged-to-service",
        _head(b"GET /api/products/1/ HTTP/1.1", b"Host: localhost", b"X-Note: cr\xc3\xa8me \xc3\xa9"),
        to="catalog", method=b"GET", target=b"/api/products/1/", headers={b"x-note": b"cr\xc3\xa8me \xc3\xa9"}),
    Row("utf8-header-bytes-unchanged-to-monolith",
        _head(b"GET /api/cart/ HTTP/1.1", b"Host: localhost", b"X-Note: cr\xc3\xa8me \xc3\xa9"),
        to="monolith", method=b"GET", target=b"/api/cart/", headers={b"x-note": b"cr\xc3\xa8me \xc3\xa9"}),
    # Reproduction 3: a non-ASCII override token raised inside the hook and mitmproxy forwarded the write to the
    # monolith with the force header, a forged shadow marker and the client's forwarding headers.
    Row("non-ascii-force-token-fails-closed",
        _head(b"POST /api/products/ HTTP/1.1", b"Host: localhost", b"X-Strangler-Force: catalog.\xc3\xa9",
              b"X-Strangler-Shadow: 1", b"X-Strangler-Mirror-Route: /x", b"X-Forwarded-For: 6.6.6.6",
              b"X-Forwarded-Host: evil.example", b"Content-Length: 2") + b"{}",
        to="catalog", target=b"/api/products/", body=b"{}",
        headers={**CLEAN, b"x-forwarded-for": b"127.0.0.1", b"x-forwarded-host": b"localhost"}),
    # Ambiguous framing: refused, or forwarded once with the chunked reading (RFC 9112 6.3).
    Row("content-length-and-chunked",
        _head(b"POST /api/cart/items/ HTTP/1.1", b"Host: localhost", b"Content-Length: 4",
              b"Transfer-Encoding: chunked") + _chunked(b"hello"),
        to="monolith", target=b"/api/cart/items/", body=b"hello", may_refuse=True),
    Row("two-content-lengths", _head(b"POST /api/cart/items/ HTTP/1.1", b"Host: localhost", b"Content-Length: 5",
                                     b"Content-Length: 6") + b"hello!", to=None),
    Row("space-before-colon", _head(b"POST /api/cart/items/ HTTP/1.1", b"Host: localhost",
                                    b"Transfer-Encoding : chunked") + _chunked(SMUGGLED_GET), to=None),
    Row("unknown-transfer-coding", _head(b"POST /api/cart/items/ HTTP/1.1", b"Host: localhost",
                                         b"Transfer-Encoding: xchunked") + _chunked(SMUGGLED_GET), to=None),
    Row("chunked-not-last", _head(b"POST /api/cart/items/ HTTP/1.1", b"Host: localhost",
                                  b"Transfer-Encoding: chunked, identity") + _chunked(SMUGGLED_GET), to=None),
    Row("bare-lf-smuggled-header", b"POST /api/cart/items/ HTTP/1.1\r\nHost: localhost\r\nX-A: 1\nTransfer-Encoding:"
        b" chunked\r\nContent-Length: 3\r\n\r\nabc", to="monolith", target=b"/api/cart/items/", body=b"abc",
        may_refuse=True),
    # Hop-by-hop: dropped on both planes; a Connection header naming an end-to-end header is refused by both.
    Row("connection-names-hop-by-hop", _head(b"GET /api/cart/ HTTP/1.1", b"Host: localhost",
                                             b"Connection: keep-alive, TE", b"TE: trailers", b"Keep-Alive: 5",
                                             b"Upgrade: x-unknown/1"),
        to="monolith", method=b"GET", target=b"/api/cart/",
        headers={b"te": None, b"keep-alive": None, b"connection": None, b"upgrade": None}),
    *(Row(f"connection-names-{name.decode().lower()}",
          _head(b"GET /api/products/1/ HTTP/1.1", b"Host: localhost", b"Connection: close, " + name,
                name + b": 1"), to=None)
      for name in (b"X-Secret-Hop", b"Cookie", b"X-Forwarded-For", b"Authorization")),
    Row("bare-cr-in-a-header-to-monolith", _head(b"GET /api/cart/ HTTP/1.1", b"Host: localhost",
                                                 b"X-A: 1\rTransfer-Encoding: chunked"), to=None),
    Row("bare-cr-in-a-header-to-service", _head(b"GET /api/products/1/ HTTP/1.1", b"Host: localhost",
                                                b"X-A: 1\rTransfer-Encoding: chunked"), to=None),
    Row("nul-in-a-header", _head(b"GET /api/cart/ HTTP/1.1", b"Host: localhost", b"X-A: 1\x00"), to=None),
    # Host allowlist: only the exact names (and ports) pass.
    *(Row(f"host-{host.decode()}", _head(b"GET /api/cart/ HTTP/1.1", b"Host: " + host), to=None)
      for host in (b"localhost:80@evil.example", b"[::1]evil.example", b"localhost.", b"127.0.0.1:80:80",
                   b"evil.example", b"localhost evil.example")),
    Row("host-with-port", _head(b"GET /api/cart/ HTTP/1.1", b"Host: localhost:8080"), to="monolith", method=b"GET",
        target=b"/api/cart/"),
]


@pytest.fixture(scope="module")
def planes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("smuggling")
    upstreams = {name: RecordingUpstream(name) for name in ("monolith", "catalog")}
    route_file = tmp / "routes.yaml"
    route_file.write_text(ROUTES.format(monolith=upstreams["monolith"].url, catalog=upstreams["catalog"].url,
                                        diff_port=free_port()))
    nginx_port, mitm_port = free_port(), free_port()
    nginx = start_nginx(load_route_file(route_file), Path(tmp / "nginx"), nginx_port, override_secret=SECRET)
    mitm = start_mitmdump(route_file, tmp, mitm_port, override_secret=SECRET)
    try:
        yield {"nginx": nginx_port, "mitmproxy": mitm_port}, upstreams
    finally:
        stop_process(mitm)
        nginx.stop()
        for upstream in upstreams.values():
            upstream.close()


@pytest.mark.parametrize("plane", ["nginx", "mitmproxy"])
@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_one_well_framed_request_or_nothing(planes, plane, row):
    ports, upstreams = planes
    for upstream in upstreams.values():
        upstream.reset()
    status, _ = exchange(ports[plane], row.raw)
    time.sleep(SETTLE)
    received = {name: list(u.requests) for name, u in upstreams.items()}
    problems = {name: list(u.problems) for name, u in upstreams.items() if u.problems}
    assert not problems, f"{plane}: upstreams saw malformed or extra bytes: {problems} (status {status})"
    forwarded = {name: reqs for name, reqs in received.items() if reqs}
    if not forwarded and (row.to is None or row.may_refuse):
        assert status is not None and (400 <= status < 500 or status == 501), f"{plane}: not refused: {status}"
        return
    assert row.to is not None, f"{plane}: forwarded what must be refused: {forwarded} (status {status})"
    assert set(forwarded) == {row.to} and len(forwarded[row.to]) == 1, f"{plane}: {forwarded}"
    request = forwarded[row.to][0]
    assert (request["method"], request["target"], request["body"]) == (row.method, row.target, row.body)
    headers: dict[bytes, list[bytes]] = {}
    for name, value in request["headers"]:
        headers.setdefault(name, []).append(value)
    assert headers.get(b"host") == [b"localhost:8080" if row.name == "host-with-port" else b"localhost"]
    if row.body or row.method == b"POST":
        assert headers.get(b"content-length") == [str(len(row.body)).encode()]
    for name, value in row.headers.items():
        assert headers.get(name) == (None if value is None else [value]), f"{plane}: {name!r}: {headers.get(name)}"
    assert status == 200
