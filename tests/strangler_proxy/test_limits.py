"""Client limits from the route file's settings, on both real planes: JSON 413/414/431 with nothing forwarded,
and connections closed past the header, body and idle timeouts (nginx's directives; the addon's own guard).

Timeouts are 2 s here; a test waits up to CLOSE_WAIT for the close, so a busy machine only makes it slower.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from strangler_proxy.loader import load_route_file, parse_route_text
from strangler_proxy.nginx.render import NginxOptions, render_nginx
from tests.strangler_proxy.planes import start_mitmdump, start_nginx, stop_process
from tests.strangler_proxy.raw_http import RecordingUpstream, closed_by_server, exchange, exchange_with_headers
from tests.strangler_proxy.upstreams import free_port

pytestmark = pytest.mark.nginx

CLOSE_WAIT = 30.0  # seconds: generous, the planes close after 2 s (+ the addon's 1 s sweep)
ROUTES = """\
upstreams:
  monolith: {monolith}
monolith: monolith
settings:
  diff_endpoint: 127.0.0.1:{diff_port}
  max_body_bytes: 1000
  max_url_bytes: 1000
  max_header_bytes: 2048
  max_header_buffers: 4
  max_headers: 20
  client_header_timeout: 2
  client_body_timeout: 2
  idle_timeout: 2
  max_connections_per_client: 4
routes: []
"""


@pytest.fixture(scope="module")
def planes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("limits")
    monolith = RecordingUpstream("monolith")
    route_file = tmp / "routes.yaml"
    route_file.write_text(ROUTES.format(monolith=monolith.url, diff_port=free_port()))
    nginx_port, mitm_port = free_port(), free_port()
    nginx = start_nginx(load_route_file(route_file), Path(tmp / "nginx"), nginx_port, override_secret=None)
    mitm = start_mitmdump(route_file, tmp, mitm_port, override_secret=None)
    try:
        yield {"nginx": nginx_port, "mitmproxy": mitm_port}, monolith
    finally:
        stop_process(mitm)
        nginx.stop()
        monolith.close()


def _head(target: bytes = b"/", *headers: bytes) -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: localhost\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"


OVER_LIMIT = [
    ("url", _head(b"/" + b"a" * 1001), 414, "url_too_long"),
    ("header-line", _head(b"/", b"Cookie: " + b"c" * 3000), 431, None),
    ("header-total", _head(b"/", *(b"X-Fill-%d: " % i + b"f" * 1500 for i in range(8))), 431, None),
    ("body-content-length", b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1001\r\n\r\n" + b"b" * 1001,
     413, "body_too_large"),
    ("body-chunked", b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
     + b"5dc\r\n" + b"b" * 1500 + b"\r\n0\r\n\r\n", 413, "body_too_large"),
    # Over twice the limit: mitmproxy's own body_size_limit refuses these while reading (it used to answer HTML).
    ("body-content-length-huge", b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 50000000\r\n\r\n"
     + b"b" * 3000, 413, "body_too_large"),
    ("body-chunked-huge", b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
     + b"1000\r\n" + b"b" * 4096 + b"\r\n", 413, "body_too_large"),
    ("header-line-and-huge-body", b"POST / HTTP/1.1\r\nHost: localhost\r\nCookie: " + b"c" * 3000
     + b"\r\nContent-Length: 50000000\r\n\r\n", 431, None),
]


@pytest.mark.parametrize("plane", ["nginx", "mitmproxy"])
@pytest.mark.parametrize(("name", "raw", "status", "code"), OVER_LIMIT, ids=[row[0] for row in OVER_LIMIT])
def test_over_a_limit_is_a_json_refusal_and_nothing_is_forwarded(planes, plane, name, raw, status, code):
    ports, monolith = planes
    monolith.reset()
    got, headers, body = exchange_with_headers(ports[plane], raw)
    assert got == status, (plane, got, body[:200])
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert code is None or error["code"] == code
    assert re.fullmatch(r"[0-9a-f]{32}", headers.get("x-request-id", "")), headers  # like every other answer
    assert monolith.requests == []


def test_within_the_limits_is_forwarded(planes):
    ports, monolith = planes
    for port in ports.values():
        monolith.reset()
        raw = _head(b"/" + b"a" * 900, b"Cookie: " + b"c" * 1800, *(b"X-Fill-%d: x" % i for i in range(15)))
        assert exchange(port, raw)[0] == 200
        assert len(monolith.requests) == 1


def test_too_many_header_lines_on_the_mitmproxy_plane(planes):
    ports, monolith = planes
    monolith.reset()
    status, body = exchange(ports["mitmproxy"], _head(b"/", *(b"X-N-%d: 1" % i for i in range(25))))
    assert status == 431 and json.loads(body)["error"]["code"] == "too_many_headers"
    assert monolith.requests == []


@pytest.mark.parametrize("plane", ["nginx", "mitmproxy"])
@pytest.mark.parametrize("sent", [b"GET / HTTP/1.1\r\nHost: local",  # head never completes (slow loris)
                                  b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nab",  # body
                                  _head(b"/")],  # answered, then idle on a keep-alive connection
                         ids=["header", "body", "idle"])
def test_a_stalled_connection_is_closed(planes, plane, sent):
    ports, monolith = planes
    monolith.reset()
    with socket.create_connection(("127.0.0.1", ports[plane])) as sock:
        sock.sendall(sent)
        assert closed_by_server(sock, CLOSE_WAIT), f"{plane} kept the connection open past {CLOSE_WAIT}s"
    assert len(monolith.requests) == (1 if sent.endswith(b"\r\n\r\n") else 0)


def test_connections_per_client_on_the_mitmproxy_plane(planes):
    ports, _ = planes
    held = [socket.create_connection(("127.0.0.1", ports["mitmproxy"])) for _ in range(4)]
    try:
        for sock in held:  # each really accepted and served
            sock.sendall(_head(b"/"))
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        with socket.create_connection(("127.0.0.1", ports["mitmproxy"])) as fifth:
            fifth.sendall(_head(b"/"))
            assert closed_by_server(fifth, CLOSE_WAIT)
    finally:
        for sock in held:
            sock.close()


def test_nginx_renders_the_same_limits():
    table = parse_route_text(ROUTES.format(monolith="http://127.0.0.1:9", diff_port=9), source="r.yaml")
    conf = render_nginx(table, NginxOptions(runtime_dir=Path("/tmp/x"), user=None))
    for directive in ("client_max_body_size 1000;", "large_client_header_buffers 4 2048;",
                      "client_header_timeout 2s;", "client_body_timeout 2s;", "keepalive_timeout 2s;",
                      "limit_conn strangler_per_client 4;", '$request_uri ~ "^.{1001}"'):
        assert directive in conf
