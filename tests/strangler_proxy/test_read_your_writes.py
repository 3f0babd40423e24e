"""Read-your-writes on the proxy side without processes: the route setting and its default, the settings, the
signed cookie, and which reads it sends where (the planes themselves: test_conformance_read_your_writes.py)."""

from __future__ import annotations

import pytest

from servicekit.write_positions import Position, positions_format, positions_merge, positions_parse
from strangler_proxy.loader import RouteFileError, parse_route_text
from strangler_proxy.read_your_writes import Entry, ReadYourWrites
from strangler_proxy.routing import RequestInfo, decide

BASE = """\
upstreams: {{monolith: "http://127.0.0.1:8000", catalog: "http://127.0.0.1:8001"}}
monolith: monolith
routes:
  - prefix: /p/
{route}
{settings}"""


def table_of(route: str, settings: str = ""):
    return parse_route_text(BASE.format(route=route, settings=settings), source="routes.yaml")


@pytest.mark.parametrize(("route", "on"), [
    ("    mode: service\n    service: catalog\n    methods: [GET, HEAD, OPTIONS]", True),
    ("    mode: canary\n    weight: 5\n    service: catalog\n    methods: [GET]", True),
    ("    mode: service\n    service: catalog", False),  # writes go to the service too
    ("    mode: service\n    service: catalog\n    methods: [GET, POST, PUT, PATCH, DELETE]", False),
    ("    mode: shadow\n    service: catalog\n    methods: [GET]", False),
    ("    mode: service\n    service: catalog\n    methods: [GET]\n    read_your_writes: false", False),
    ("    mode: service\n    service: catalog\n    read_your_writes: true", True),
])
def test_on_by_default_for_routes_reading_elsewhere_than_their_writes_go(route, on):
    assert table_of(route).routes[0].reads_your_writes is on


def test_settings_and_their_errors():
    settings = table_of("    mode: monolith", "settings:\n  read_your_writes: {cookie: rw, max_age: 30, window: 2}")
    ryw = settings.settings.read_your_writes
    assert (ryw.cookie, ryw.max_age, ryw.window, ryw.secret_env) == ("rw", 30, 2, "STRANGLER_RYW_SECRET")
    with pytest.raises(RouteFileError, match="read_your_writes.window"):
        table_of("    mode: monolith", "settings:\n  read_your_writes: {window: 0}")
    with pytest.raises(RouteFileError, match="only canary and service routes"):
        table_of("    mode: monolith\n    read_your_writes: true")


def test_positions_round_trip_and_merge():
    odd = Position("odd:type", "a,b", 3)
    assert positions_parse(positions_format([odd, Position("p", "1", 2)])) == [odd, ("p", "1", 2)]
    assert positions_merge([Position("p", "1", 2)], [Position("p", "1", 5), Position("p", "2", 1)]) == [
        ("p", "1", 5), ("p", "2", 1)]


def test_the_cookie_is_signed_and_expires(monkeypatch):
    monkeypatch.setenv("STRANGLER_RYW_SECRET", "k1")
    table = table_of("    mode: service\n    service: catalog\n    methods: [GET]")
    settings = table.settings.read_your_writes
    ryw = ReadYourWrites()
    entries = [Entry("monolith", 200, Position("p", "1", 4)), Entry("monolith", 100, None)]
    value = ryw.encode(settings, entries)
    assert ryw.decode(settings, value, now=50) == entries
    assert ryw.decode(settings, value, now=150) == entries[:1]  # the pin expired
    payload, mac = value.split(".")
    assert ryw.decode(settings, payload + "." + mac[:-2] + "AA", now=50) == []
    assert ryw.decode(settings, "garbage", now=50) == []
    monkeypatch.setenv("STRANGLER_RYW_SECRET", "k2")
    assert ReadYourWrites().decode(settings, value, now=50) == []  # another key: a foreign cookie


def test_which_reads_a_write_sends_where(monkeypatch):
    monkeypatch.setenv("STRANGLER_RYW_SECRET", "k1")
    table = table_of("    mode: service\n    service: catalog\n    methods: [GET, HEAD]")
    ryw = ReadYourWrites()
    set_cookie = ryw.written(table, writer="monolith", written="p:1:4", cookie=None, now=1000)
    assert set_cookie.startswith("strangler_ryw=") and "Max-Age=60;" in set_cookie
    cookies = {"strangler_ryw": set_cookie.split(";")[0].split("=", 1)[1]}

    def plan(method="GET", path="/p/1", cookies=cookies, now=1001):
        decision = decide(table, RequestInfo(method=method, path=path), override_secret=None)
        return ryw.read_plan(table, decision, method=method, cookies=cookies, now=now)

    assert plan().read_after == "p:1:4" and plan().owner == "monolith"
    assert plan(now=1061) is None  # max_age passed
    assert plan(cookies={}) is None and plan(method="POST") is None and plan(path="/elsewhere") is None
    many = ryw.written(table, writer="monolith", written="many", cookie=cookies["strangler_ryw"], now=1002)
    pinned = plan(cookies={"strangler_ryw": many.split(";")[0].split("=", 1)[1]})
    assert pinned.owner == "monolith" and pinned.read_after is None
    decision = decide(table, RequestInfo(method="GET", path="/p/1"), override_secret=None)
    assert ryw.decision_pinned(decision, pinned).primary == "monolith"
    by_service = ryw.written(table, writer="catalog", written="p:1:5", cookie=None, now=1000)
    assert plan(cookies={"strangler_ryw": by_service.split(";")[0].split("=", 1)[1]}) is None  # read where written
