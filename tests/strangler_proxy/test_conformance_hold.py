"""Conformance of the write hold (ownership flip): both planes hold the same writes and let the same requests by.

Writes under a held route (whatever route would serve them, here a read-only one) answer 503 write_hold with
Retry-After on nginx and on the mitmproxy plane (hold: reject); reads and paths outside pass. The mitmproxy
plane's queue mode lets a queued write through once a reloaded route file lifts the hold.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from strangler_proxy.hold import held_route
from strangler_proxy.loader import parse_route_text
from strangler_proxy.nginx.render import NginxOptions, render_nginx
from tests.strangler_proxy.planes import Client, planes_on_stubs

pytestmark = pytest.mark.nginx

ROUTES = """\
upstreams:
  monolith: {monolith}
  catalog: {catalog}
monolith: monolith
settings:
  hold_retry_after: 2
  hold_queue_seconds: 60
routes:
  - prefix: /api/products/
    methods: [GET, HEAD, OPTIONS]
    mode: service
    service: catalog
    hold: {hold}
  - path: /api/exact/
    hold: reject
"""

ROWS = [  # method, target, held?
    ("POST", "/api/products/", True),
    ("PATCH", "/api/products/7/", True),
    ("DELETE", "/api//products/7/", True),  # normalised first
    ("GET", "/api/products/7/", False),
    ("HEAD", "/api/products/", False),
    ("POST", "/api/orders/", False),
    ("POST", "/api/productsx/", False),
    ("PUT", "/api/exact/", True),
    ("PUT", "/api/exact/1/", False),
]


def _write(path, upstreams, hold: str) -> None:
    path.write_text(ROUTES.format(monolith=upstreams["monolith"].url, catalog=upstreams["catalog"].url, hold=hold))


@pytest.fixture(scope="module")
def planes(tmp_path_factory):
    with planes_on_stubs(tmp_path_factory.mktemp("hold"), ROUTES, fields={"hold": "reject"}) as planes:
        yield planes


@pytest.mark.parametrize(("method", "target", "held"), ROWS)
def test_both_planes_hold_the_same_writes(planes, method, target, held):
    table, clients = planes.table, planes.clients
    assert (held_route(table, method=method, path=target.replace("//", "/")) is not None) == held
    for plane, client in clients.items():
        reply = client.send(method, target)
        if held:
            assert reply.status == 503, plane
            assert reply.headers.get("retry-after") == "2", plane
            assert json.loads(reply.body)["error"]["code"] == "write_hold", plane
        else:
            assert reply.status != 503 and "retry-after" not in reply.headers, plane


BARE = "upstreams:\n  monolith: http://127.0.0.1:9/\nmonolith: monolith\nroutes:"


def test_no_hold_renders_nothing():
    table = parse_route_text(BARE + " []\n", source="t")

    assert "strangler_hold" not in render_nginx(table, NginxOptions(runtime_dir="/tmp/x"))


def test_a_bad_hold_value_is_refused():
    with pytest.raises(Exception, match="hold"):
        parse_route_text(BARE + "\n  - prefix: /a/\n    hold: wait\n", source="t")


def test_queued_writes_go_on_when_the_hold_lifts(planes):
    port = planes.client("mitmproxy").port
    _write(planes.route_file, planes.upstreams, "queue")
    deadline = time.monotonic() + 60
    while Client(port).send("POST", "/api/orders/").status == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.5)  # the file watcher polls every 0.25 s; the queue waits up to 60 s, so this bounds nothing
    result = {}

    def send():
        result["reply"] = Client(port).send("POST", "/api/products/")

    thread = threading.Thread(target=send)
    thread.start()
    time.sleep(0.5)
    assert "reply" not in result  # queued, not answered
    _write(planes.route_file, planes.upstreams, "null")
    thread.join(timeout=60)
    assert result["reply"].status == 200 and result["reply"].served_by == "monolith"
