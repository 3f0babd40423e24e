"""End to end: a real mitmdump (`python -m strangler_proxy run`) in front of real upstream HTTP servers.

One proxy serves the whole module; each test installs the route file it needs through hot reload (and
waits until the admin endpoint reports the new file's digest), which also exercises reloading.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from tests.waiting import WAIT_TIMEOUT, wait_until

from .running_proxy import DEAD_SERVICE, Proxy
from .upstream_servers import UpstreamServer, json_answer


@pytest.fixture(scope="module")
def servers():
    monolith = UpstreamServer("monolith").start()
    catalog = UpstreamServer("catalog").start()
    yield monolith, catalog
    monolith.stop()
    catalog.stop()


@pytest.fixture(scope="module")
def proxy(servers, tmp_path_factory):
    monolith, catalog = servers
    running = Proxy(tmp_path_factory.mktemp("proxy"), monolith, catalog)
    yield running
    running.stop()


@pytest.fixture
def reset(servers, proxy):
    """Default upstream behaviour and an empty request log for each test."""
    for server in servers:
        name = server.name
        server.handler = lambda m, p, h, b, name=name: json_answer(200, {"upstream": name, "path": p})
        with server._lock:
            server.requests.clear()
    return proxy


def upstream_of(answer) -> str:
    status, headers, body = answer
    return headers.get("x-strangler-upstream", "")


def test_hot_reload_applies_without_a_restart_or_a_failing_request(reset):
    proxy = reset
    proxy.install(proxy.routes_text(mode="monolith"))
    results: list[tuple[float, int, str, float]] = []  # (answered at, status, upstream, sent at)
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            sent_at = time.monotonic()
            status, headers, _ = proxy.request("GET", "/api/products/")
            results.append((time.monotonic(), status, headers.get("x-strangler-upstream", ""), sent_at))

    threads = [threading.Thread(target=client) for _ in range(2)]
    for t in threads:
        t.start()
    def answered_after(moment: float) -> bool:  # a request sent after `moment` has its answer
        return any(sent_at > moment for _, _, _, sent_at in results)

    try:
        wait_until(lambda: answered_after(0), what="traffic through the proxy")
        switched_at = time.monotonic()
        proxy.write_routes(proxy.routes_text(mode="service"))
        wait_until(lambda: any(r[2] == "catalog" and r[0] > switched_at for r in results), interval=0.02,
                   what="an answer from the new table")
        first_catalog = min(r[0] for r in results if r[2] == "catalog")
        wait_until(lambda: answered_after(first_catalog), what="a request sent after the switch")
        # A bad edit: rejected with one clear line, the previous table keeps serving.
        bad_at = time.monotonic()
        proxy.write_routes(proxy.routes_text(mode="service").replace("timeout: 2", "timeout: -1"))
        wait_until(lambda: "route file rejected" in proxy.log(), what="the bad edit to be rejected")
        rejected_at = time.monotonic()
        wait_until(lambda: answered_after(rejected_at), what="a request sent after the rejection")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert all(status == 200 for _, status, _, _ in results), [r for r in results if r[1] != 200][:5]
    # Requests sent once the new table answered use it; one already in flight finishes with the table it started
    # with (so it is judged by when it was sent, not when it was answered).
    after_switch = [up for _, _, up, sent_at in results if sent_at > first_catalog]
    assert after_switch and set(after_switch) == {"catalog"}
    assert {up for _, _, up, sent_at in results if sent_at > bad_at} == {"catalog"}
    rejected = [line for line in proxy.log().splitlines() if "route file rejected" in line]
    assert len(rejected) == 1
    assert f"{proxy.routes}:13: routes[0].timeout: must be 0.001..3600" in rejected[0]
    assert "strangler_proxy_route_table_reloads_total{result=\"rejected\"} 1.0" in proxy.admin("/metrics")


def test_service_down_safe_requests_fall_back_and_unsafe_get_503(reset, servers):
    proxy = reset
    proxy.install(proxy.routes_text(mode="service", extra=DEAD_SERVICE))
    status, headers, body = proxy.request("GET", "/api/orders/1/")  # nothing listens on the orders port
    assert status == 200 and headers["x-strangler-upstream"] == "monolith"
    assert headers["x-strangler-fallback"] == "orders:connect"
    status, headers, body = proxy.request("POST", "/api/orders/", body=b"{}")
    assert status == 503 and json.loads(body)["error"]["details"] == {"upstream": "orders", "reason": "connect"}
    _, catalog = servers
    catalog.handler = lambda m, p, h, b: json_answer(503, {"error": {"code": "unavailable"}})
    status, headers, body = proxy.request("GET", "/api/products/?page=2")
    assert status == 200 and headers["x-strangler-upstream"] == "monolith"
    assert headers["x-strangler-fallback"] == "catalog:status_503"
    assert json.loads(body) == {"upstream": "monolith", "path": "/api/products/?page=2"}
    status, headers, body = proxy.request("POST", "/api/products/", body=b"{}",
                                          headers={"Content-Type": "application/json"})
    assert status == 503  # the service's own 503: the write may have happened, so it is not retried
    assert json.loads(body) == {"error": {"code": "unavailable"}}


BREAKER_COOLDOWN = 8.0  # outlasts the requests made while the breaker must stay open, on a busy box too


@pytest.fixture
def slow_cooldown_proxy(reset, servers, tmp_path):
    """A proxy of its own whose open breaker waits long enough that no probe happens before the test wants one."""
    monolith, catalog = servers
    running = Proxy(tmp_path, monolith, catalog, breaker_cooldown=BREAKER_COOLDOWN)
    yield running
    running.stop()


def test_breaker_opens_then_probes_and_closes(slow_cooldown_proxy, servers):
    proxy = slow_cooldown_proxy
    proxy.install(proxy.routes_text(mode="service"))
    _, catalog = servers
    catalog.handler = lambda m, p, h, b: json_answer(500, {})
    for attempt in range(3):  # strangler_breaker_failures=3: the third failure opens the breaker
        if attempt == 2:
            opening = time.monotonic()  # the breaker opens after this moment...
        assert proxy.request("GET", "/api/products/")[0] == 200  # each one served by the fallback
    opened = time.monotonic()  # ...and before this one
    assert 'strangler_proxy_breaker_state{upstream="catalog"} 2.0' in proxy.admin("/metrics")
    seen = len(catalog.received())
    for _ in range(5):
        status, headers, _ = proxy.request("GET", "/api/products/")
        assert status == 200 and headers["x-strangler-fallback"] == "catalog:breaker_open"
    status, headers, body = proxy.request("PUT", "/api/products/1/", body=b"{}")
    assert status == 503 and json.loads(body)["error"]["details"]["reason"] == "breaker_open"
    assert len(catalog.received()) == seen  # an open breaker sends nothing to the service
    assert time.monotonic() - opening < BREAKER_COOLDOWN, "too slow to tell an open breaker from a probing one"
    catalog.handler = lambda m, p, h, b: json_answer(200, {"upstream": "catalog"})
    time.sleep(max(0.0, BREAKER_COOLDOWN + 0.2 - (time.monotonic() - opened)))  # the next request is the probe
    assert upstream_of(proxy.request("GET", "/api/products/")) == "catalog"
    assert 'strangler_proxy_breaker_state{upstream="catalog"} 0.0' in proxy.admin("/metrics")


def test_shadow_never_delays_the_client_and_diffs_are_counted(reset, servers):
    proxy = reset
    proxy.install(proxy.routes_text(mode="monolith"))
    _, catalog = servers
    release, answered = threading.Event(), threading.Event()

    def held_shadow(m, p, h, b):
        release.wait(WAIT_TIMEOUT)  # answers only once the client has had its answer (or never, in time)
        answered.set()
        return json_answer(200, {"upstream": "catalog", "path": p})

    catalog.handler = held_shadow
    before = proxy.admin("/diffs")["routes"].get("/api/categories/", {}).get("comparisons", 0)
    try:
        status, headers, _ = proxy.request("GET", "/api/categories/")
        assert status == 200 and headers["x-strangler-upstream"] == "monolith"
        assert not answered.is_set()  # the client was answered while the shadow still waited
    finally:
        release.set()
    route = wait_until(lambda: (r := proxy.admin("/diffs")["routes"].get("/api/categories/", {})).get(
        "comparisons", 0) > before and r, what="the shadow comparison")
    assert route["comparisons"] == before + 1
    assert route["top_fields"].get("$.upstream", 0) >= 1  # "$.path" is ignored by the route's diff rules
    assert "$.path" not in route["top_fields"]
    assert 'strangler_proxy_shadow_comparisons_total{route="/api/categories/"}' in proxy.admin("/metrics")


def raw_exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks):
                head, _, rest = b"".join(chunks).partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                if len(rest) >= length:
                    break
        return b"".join(chunks)


def test_security_refusals_over_the_wire(reset, servers):
    proxy = reset
    monolith, catalog = servers
    absolute = raw_exchange(proxy.port, b"GET http://169.254.169.254/latest/meta-data HTTP/1.1\r\n"
                                        b"Host: 169.254.169.254\r\n\r\n")
    assert absolute.startswith(b"HTTP/1.1 400") and b"absolute_form_refused" in absolute
    connect = raw_exchange(proxy.port, b"CONNECT internal.example:443 HTTP/1.1\r\nHost: internal.example:443\r\n\r\n")
    assert connect.split(b" ")[1] in (b"400", b"405")
    status, _, body = proxy.request("GET", "/api/products/", headers={"Host": "attacker.example"})
    assert status == 421 and json.loads(body)["error"]["code"] == "unknown_host"
    status, _, body = proxy.request("GET", "/static/..%2f..%2fsettings.py")
    assert status == 400 and json.loads(body)["error"]["code"] == "bad_path"
    assert monolith.received() == [] and catalog.received() == []


def test_body_limits_and_request_smuggling_over_the_wire(reset, servers):
    proxy = reset
    status, _, body = proxy.request("POST", "/legacy/", body=b"x" * 1001)
    assert status == 413 and json.loads(body)["error"]["code"] == "body_too_large"
    # Far beyond the limit: mitmproxy's own cap (set by the addon) stops reading long before the end.
    huge = raw_exchange(proxy.port, b"POST /legacy/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000000\r\n\r\n"
                        + b"x" * 10000)
    assert huge.startswith(b"HTTP/1.1 413")
    smuggle = raw_exchange(proxy.port, b"POST /legacy/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                           b"GET /admin/ HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert smuggle.startswith(b"HTTP/1.1 400")
    assert servers[0].received() == [] and servers[1].received() == []


def test_exchanges_are_recorded_with_secrets_redacted(reset):
    from strangler_proxy.recording import read_recording

    proxy = reset
    proxy.install(proxy.routes_text(mode="service"))
    status, _, _ = proxy.request("GET", "/api/products/?recorded=1",
                                 headers={"Authorization": "Bearer top-secret", "X-Request-ID": "rec-e2e"})
    assert status == 200
    deadline = time.monotonic() + 5
    rows: list[dict] = []
    while time.monotonic() < deadline and not rows:
        rows = [r for r in read_recording(proxy.record_path) if r["request_id"] == "rec-e2e"]
        time.sleep(0.05)
    assert rows and rows[0]["path"] == "/api/products/?recorded=1" and rows[0]["upstream"] == "catalog"
    assert rows[0]["status"] == 200 and rows[0]["route"] == "/api/products/"
    assert "top-secret" not in proxy.record_path.read_text()
