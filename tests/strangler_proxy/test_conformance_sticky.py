"""Conformance of canary stickiness behind a load balancer, on the real nginx and mitmproxy planes.

Every client shares one peer address (the load balancer, a trusted proxy) and is told apart only by its
X-Forwarded-For; it gets the sticky cookie on its first answer and must stay on its side with it.
"""

from __future__ import annotations

import re

import pytest

from strangler_proxy.murmur import in_canary
from tests.strangler_proxy.planes import planes_on_stubs

pytestmark = pytest.mark.nginx

ROUTES = """\
upstreams:
  monolith: {monolith}
  catalog: {catalog}
monolith: monolith
routes:
  - prefix: /k/
    mode: canary
    weight: 10
    service: catalog
sticky:
  cookie: edge_uid
  max_age: 3600
  same_site: Strict
  secure: true
settings:
  trusted_proxies: [127.0.0.1/32, 10.255.0.0/16]
"""
CLIENTS = 5000
# HEAD: the upstream answers in one write (a GET body is a second one, which Nagle holds for the delayed ACK).
METHOD = "HEAD"
COOKIE = re.compile(r"^edge_uid=([0-9a-f]{32}); Path=/; Max-Age=3600; SameSite=Strict; Secure; HttpOnly$")


@pytest.fixture(scope="module")
def planes(tmp_path_factory):
    with planes_on_stubs(tmp_path_factory.mktemp("sticky"), ROUTES) as planes:
        yield planes


def client_address(index: int) -> str:
    return f"198.18.{index // 250}.{index % 250 + 1}"


@pytest.mark.slow
@pytest.mark.parametrize("plane", ["nginx", "mitmproxy"])
def test_ten_percent_canary_holds_behind_one_peer_and_each_client_keeps_its_side(planes, plane):
    upstreams, client = planes.upstreams, planes.client(plane)
    canary, moved, bad_cookies = 0, [], []
    for index in range(CLIENTS):
        # The load balancer appends the client; what the client itself claimed before it is not believed.
        forwarded = {"X-Forwarded-For": f"6.6.6.6, {client_address(index)}, 10.255.0.7"}
        first = client.send(METHOD, "/k/item", forwarded)
        cookies = [value for name, value in first.header_list if name.lower() == "set-cookie"]
        match = COOKIE.match(cookies[0]) if len(cookies) == 1 else None
        if match is None:
            bad_cookies.append(cookies)
            continue
        canary += first.served_by == "catalog"
        second = client.send(METHOD, "/k/item", {**forwarded, "Cookie": f"edge_uid={match.group(1)}"})
        if second.served_by != first.served_by or "set-cookie" in second.headers:
            moved.append((index, first.served_by, second.served_by, second.headers.get("set-cookie")))
    assert not bad_cookies[:5], f"{len(bad_cookies)} first answers without exactly one sticky cookie"
    assert not moved[:5], f"{len(moved)} clients changed side or got a second cookie"
    assert 0.08 <= canary / CLIENTS <= 0.12, f"{canary} of {CLIENTS} clients on the canary"
    # The upstreams were told the client as the trusted proxies resolve it, never the peer or the spoofed entry.
    seen = {record["headers"]["x-forwarded-for"] for name in ("monolith", "catalog")
            for record in upstreams[name].requests[-200:] if record["path"] == "/k/item"}
    assert seen <= {client_address(i) for i in range(CLIENTS)}, sorted(seen)[:5]


@pytest.mark.parametrize("plane", ["nginx", "mitmproxy"])
def test_a_client_keyed_by_its_header_gets_no_cookie(planes, plane):
    client = planes.client(plane)
    reply = client.send("GET", "/k/item", {"X-User-Id": "u-42"})
    assert reply.status == 200 and "set-cookie" not in reply.headers
    again = client.send("GET", "/k/item", {"X-User-Id": "u-42"})
    assert again.served_by == reply.served_by


@pytest.mark.parametrize("plane", ["nginx", "mitmproxy"])
def test_the_cookie_is_read_as_sent_on_both_planes(planes, plane):
    """The key is the cookie's value as sent, quotes and all, and the first of a repeated name (nginx's
    $cookie_<name>): quoted ids land where their quoted text hashes, on both planes."""
    client = planes.client(plane)
    wrong = []
    for index in range(300):
        uid = f"{index:032x}"
        reply = client.send(METHOD, "/k/item", {"Cookie": f'a=1; edge_uid="{uid}"; edge_uid=other'})
        expected = "catalog" if in_canary(f'"{uid}"', 10) else "monolith"
        if reply.served_by != expected or "set-cookie" in reply.headers:
            wrong.append((uid, reply.served_by, expected))
    assert not wrong[:5], f"{len(wrong)} of 300 clients not keyed on their cookie as sent"
