"""addon hooks (mitmproxy taddons/tflow): options, decisions applied to flows, headers, fallback, breaker.

Service-bound requests are really sent (the addon's own client) to real HTTP servers on ephemeral ports.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import threading
import time

import pytest
from mitmproxy import exceptions, http
from mitmproxy.test import taddons, tflow

from strangler_proxy.addon import StranglerAddon
from strangler_proxy.override import override_token
from strangler_proxy.oversize import OversizeBodies
from strangler_proxy.recording import read_recording
from tests.waiting import WAIT_TIMEOUT

from .upstream_servers import UpstreamServer, json_answer

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
    fallback: true
    timeout: 1
  - prefix: /api/orders/
    mode: service
    service: catalog
    timeout: 1
  - prefix: /api/categories/
    mode: shadow
    service: catalog
  - prefix: /legacy/
    mode: monolith
"""


@pytest.fixture
def monolith():
    server = UpstreamServer("monolith").start()
    yield server
    server.stop()


@pytest.fixture
def catalog():
    server = UpstreamServer("catalog").start()
    yield server
    server.stop()


@pytest.fixture
def routes_file(tmp_path, monolith, catalog):
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES.format(monolith=monolith.url, catalog=catalog.url))
    return path


@pytest.fixture
def proxy(routes_file, tmp_path):
    addon = StranglerAddon()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, strangler_routes=str(routes_file), strangler_reload_interval="0",
                       strangler_breaker_failures=2, strangler_breaker_cooldown="60",
                       strangler_diffs=str(tmp_path / "diffs.jsonl"), strangler_record=str(tmp_path / "rec.jsonl"))
        yield addon, tctx
    addon.done()


def make_flow(method="GET", path="/", *, host="localhost:8080", headers=(), body=b"", authority=""):
    header_pairs = [(b"Host", host.encode())] if host else []
    header_pairs += [(k.encode(), v.encode()) for k, v in headers]
    request = http.Request(
        "127.0.0.1", 8080, method.encode(), b"http", authority.encode(), path.encode(), b"HTTP/1.1",
        http.Headers(header_pairs), body, None, time.time(), time.time(),
    )
    return tflow.tflow(req=request)


def through(addon, flow):
    """request hook, then (when mitmproxy would forward) a canned monolith answer, then the response hook."""
    asyncio.run(addon.request(flow))
    if flow.response is None:
        flow.response = http.Response.make(200, b'{"upstream": "monolith"}', {"Content-Type": "application/json"})
    addon.response(flow)
    return flow


def error_of(flow):
    return json.loads(flow.response.content)["error"]


def test_bad_route_file_is_an_options_error_with_file_line_field(tmp_path, routes_file):
    bad = tmp_path / "bad.yaml"
    bad.write_text(routes_file.read_text().replace("mode: shadow", "mode: shadowy"))
    addon = StranglerAddon()
    with taddons.context(addon) as tctx:
        with pytest.raises(exceptions.OptionsError, match=r"bad\.yaml:\d+: routes\[2\]\.mode: unknown mode"):
            tctx.configure(addon, strangler_routes=str(bad), strangler_reload_interval="0")
        with pytest.raises(exceptions.OptionsError, match="strangler_breaker_failures"):
            tctx.configure(addon, strangler_breaker_failures=0)
        with pytest.raises(exceptions.OptionsError, match="strangler_breaker_cooldown: 'soon' is not a number"):
            tctx.configure(addon, strangler_breaker_cooldown="soon")
    addon.done()


def test_monolith_routes_are_pointed_at_the_monolith_and_tagged(proxy, monolith):
    addon, _ = proxy
    flow = through(addon, make_flow("GET", "/legacy/page?x=1"))
    assert (flow.request.host, flow.request.port, flow.request.scheme) == ("127.0.0.1", monolith.port, "http")
    assert flow.request.host_header == "localhost:8080"  # the client's Host goes upstream, like nginx
    assert flow.response.headers["X-Strangler-Route"] == "/legacy/"
    assert flow.response.headers["X-Strangler-Upstream"] == "monolith"
    unmatched = through(addon, make_flow("GET", "/about/"))
    assert unmatched.response.headers["X-Strangler-Route"] == "default"


def test_service_routes_are_sent_to_the_service_with_request_id_and_forwarded_headers(proxy, catalog):
    addon, _ = proxy
    flow = through(addon, make_flow("GET", "/api/products/7/?q=a", headers=[("X-Request-ID", "abc-123")]))
    assert flow.response.status_code == 200
    assert json.loads(flow.response.content)["upstream"] == "catalog"
    assert flow.response.headers["X-Strangler-Upstream"] == "catalog"
    assert flow.response.headers["X-Request-ID"] == "abc-123"
    sent = catalog.received()[0]
    assert sent["path"] == "/api/products/7/?q=a"
    assert sent["headers"]["x-request-id"] == "abc-123"
    assert sent["headers"]["host"] == "localhost:8080"
    assert sent["headers"]["x-forwarded-for"] == "127.0.0.1"


def test_a_request_id_is_made_when_missing_or_unsafe(proxy, catalog):
    addon, _ = proxy
    flow = through(addon, make_flow("GET", "/api/products/", headers=[("X-Request-ID", "bad id\twith spaces")]))
    made = flow.response.headers["X-Request-ID"]
    assert made != "bad id\twith spaces" and len(made) == 32
    assert catalog.received()[0]["headers"]["x-request-id"] == made


def test_override_header_is_honoured_only_when_signed_and_never_forwarded(proxy, catalog, monolith, monkeypatch):
    addon, _ = proxy
    monkeypatch.setenv("STRANGLER_OVERRIDE_SECRET", "s3cret")
    forced = through(addon, make_flow("GET", "/legacy/x", headers=[
        ("X-Strangler-Force", override_token("s3cret", "catalog"))]))
    assert forced.response.headers["X-Strangler-Upstream"] == "catalog"
    assert "x-strangler-force" not in catalog.received()[0]["headers"]
    forged = through(addon, make_flow("GET", "/legacy/x", headers=[
        ("X-Strangler-Force", override_token("wrong", "catalog"))]))
    assert forged.response.headers["X-Strangler-Upstream"] == "monolith"
    assert "X-Strangler-Force" not in forged.request.headers


def test_clients_cannot_claim_a_request_is_a_shadow_or_mirror_copy(proxy, catalog):
    addon, _ = proxy
    through(addon, make_flow("GET", "/api/products/", headers=[
        ("X-Strangler-Shadow", "1"), ("X-Strangler-Mirror-Route", "/api/products/"),
        ("X-Strangler-Mirror-Primary", "monolith"), ("X-Strangler-Mirror-Shadow", "catalog")]))
    assert not any(name.startswith("x-strangler") for name in catalog.received()[0]["headers"])


def test_hop_by_hop_headers_are_stripped(proxy, catalog):
    addon, _ = proxy
    through(addon, make_flow("GET", "/api/products/", headers=[
        ("Connection", "keep-alive, TE"), ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"), ("Proxy-Authorization", "Basic eA=="), ("Accept", "application/json")]))
    sent = catalog.received()[0]["headers"]
    assert not {"keep-alive", "te", "proxy-authorization"} & set(sent)
    assert sent["accept"] == "application/json"


def test_a_connection_header_naming_an_end_to_end_header_is_refused(proxy, catalog, monolith):
    addon, _ = proxy
    # nginx cannot strip headers named at run time, so both planes refuse instead of forwarding them.
    for path in ("/api/products/", "/legacy/x"):
        flow = through(addon, make_flow("GET", path, headers=[("Connection", "keep-alive, X-Secret-Hop"),
                                                              ("X-Secret-Hop", "1")]))
        assert flow.response.status_code == 400
        assert error_of(flow)["code"] == "connection_header_refused"
    assert catalog.received() == []


@pytest.mark.parametrize(("kwargs", "status", "code"), [
    ({"method": "CONNECT", "path": ""}, 405, "connect_refused"),
    ({"path": "/x", "authority": "evil.example:80"}, 400, "absolute_form_refused"),
    ({"path": "/x", "host": "evil.example"}, 421, "unknown_host"),
    ({"path": "/x", "host": ""}, 421, "unknown_host"),
    ({"path": "/api/%2e%2e/%2e%2e/etc/passwd"}, 400, "bad_path"),
    ({"path": "/api/products%2f..%2fadmin"}, 400, "bad_path"),
    ({"method": "POST", "path": "/legacy/", "body": b"x" * 1001}, 413, "body_too_large"),
])
def test_refusals_are_json_errors_and_nothing_is_contacted(proxy, monolith, catalog, kwargs, status, code):
    addon, _ = proxy
    flow = make_flow(**kwargs)
    through(addon, flow)
    assert flow.response.status_code == status
    assert error_of(flow)["code"] == code
    assert flow.response.headers["X-Strangler-Upstream"] == "proxy"
    assert flow.request.host == "127.0.0.1" and flow.request.port == 8080  # never re-pointed
    assert catalog.received() == [] and monolith.received() == []


def test_allowed_hosts_option(proxy):
    addon, tctx = proxy
    tctx.configure(addon, strangler_hosts="shop.example")
    assert through(addon, make_flow("GET", "/legacy/", host="shop.example:443")).response.status_code == 200
    assert through(addon, make_flow("GET", "/legacy/", host="localhost")).response.status_code == 421
    tctx.configure(addon, strangler_hosts="*")
    assert through(addon, make_flow("GET", "/legacy/", host="anything")).response.status_code == 200


def test_service_5xx_on_a_safe_method_falls_back_to_the_monolith(proxy, catalog, monolith):
    addon, _ = proxy
    catalog.handler = lambda m, p, h, b: json_answer(502, {"boom": True})
    flow = make_flow("GET", "/api/products/")
    asyncio.run(addon.request(flow))
    assert flow.response is None  # mitmproxy sends it on, to the monolith
    assert (flow.request.host, flow.request.port) == ("127.0.0.1", monolith.port)
    addon.response(through_monolith(flow))
    assert flow.response.headers["X-Strangler-Upstream"] == "monolith"
    assert flow.response.headers["X-Strangler-Fallback"] == "catalog:status_502"


def through_monolith(flow):
    flow.response = http.Response.make(200, b"{}", {"Content-Type": "application/json"})
    return flow


def test_timeout_falls_back_for_safe_methods(proxy, catalog, monolith):
    addon, _ = proxy
    release, answered = threading.Event(), threading.Event()

    def hung(m, p, h, b):
        release.wait(WAIT_TIMEOUT)
        answered.set()
        return json_answer(200, {})

    catalog.handler = hung
    flow = make_flow("GET", "/api/products/")
    try:
        asyncio.run(addon.request(flow))
        assert not answered.is_set()  # the route's 1 s timeout gave up on the service, which never answered
    finally:
        release.set()
    assert flow.response is None and flow.request.port == monolith.port


def test_unsafe_method_to_a_dead_service_gets_a_503_json_error(proxy, catalog):
    addon, _ = proxy
    catalog.stop()
    flow = through(addon, make_flow("POST", "/api/products/", body=b"{}"))
    assert flow.response.status_code == 503
    assert error_of(flow) == {"code": "upstream_unavailable", "message": "catalog did not answer (connect)",
                              "details": {"upstream": "catalog", "reason": "connect"}}


def test_dead_service_on_a_route_without_fallback_is_a_503_even_for_get(proxy, catalog):
    addon, _ = proxy
    catalog.stop()
    flow = through(addon, make_flow("GET", "/api/orders/"))
    assert flow.response.status_code == 503
    assert error_of(flow)["details"] == {"upstream": "catalog", "reason": "connect"}


def test_service_5xx_without_fallback_is_passed_through(proxy, catalog):
    addon, _ = proxy
    catalog.handler = lambda m, p, h, b: json_answer(500, {"error": {"code": "server_error"}})
    flow = through(addon, make_flow("GET", "/api/orders/"))
    assert flow.response.status_code == 500
    assert flow.response.headers["X-Strangler-Upstream"] == "catalog"


def test_open_breaker_sends_safe_requests_to_the_monolith_and_refuses_unsafe_ones(proxy, catalog, monolith):
    addon, _ = proxy
    catalog.stop()
    for _ in range(2):  # strangler_breaker_failures=2
        through(addon, make_flow("GET", "/api/orders/"))
    assert addon.breakers.states() == {"catalog": "open"}
    safe = make_flow("GET", "/api/orders/")
    asyncio.run(addon.request(safe))
    assert safe.response is None and safe.request.port == monolith.port  # no fallback configured, breaker open
    unsafe = through(addon, make_flow("DELETE", "/api/orders/1/"))
    assert unsafe.response.status_code == 503
    assert error_of(unsafe)["details"] == {"upstream": "catalog", "reason": "breaker_open"}
    text = addon.metrics.exposition().decode()
    assert 'strangler_proxy_breaker_state{upstream="catalog"} 2.0' in text


def test_shadow_route_serves_the_monolith_and_compares_in_the_background(proxy, catalog, monolith):
    addon, _ = proxy
    catalog.handler = lambda m, p, h, b: json_answer(200, {"upstream": "monolith", "extra": 1})
    flow = through(addon, make_flow("GET", "/api/categories/", headers=[("X-Request-ID", "shadow-1")]))
    assert flow.response.headers["X-Strangler-Upstream"] == "monolith"
    catalog.wait_for(1)
    deadline = time.monotonic() + 5
    while addon.store.summary()["comparisons"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    summary = addon.diff_summary()
    assert summary["routes"]["/api/categories/"]["diffs"] == 1
    assert summary["recent"][0]["differences"] == [
        {"path": "$.extra", "kind": "added", "expected": None, "actual": 1}]
    assert catalog.received()[0]["headers"]["x-strangler-shadow"] == "1"
    assert catalog.received()[0]["headers"]["x-request-id"] == "shadow-1"


def test_learned_noise_is_kept_beside_the_diffs_sample_and_loaded_by_the_next_proxy(proxy, catalog, monolith,
                                                                                     routes_file, tmp_path):
    addon, _ = proxy
    served = iter(range(1, 1000))
    monolith.handler = lambda m, p, h, b: json_answer(200, {"upstream": "monolith", "n": next(served)})
    catalog.handler = lambda m, p, h, b: json_answer(200, {"upstream": "monolith", "n": -1})
    flow = make_flow("GET", "/api/categories/")
    asyncio.run(addon.request(flow))
    flow.response = http.Response.make(200, b'{"upstream": "monolith", "n": 0}', {"Content-Type": "application/json"})
    addon.response(flow)
    deadline = time.monotonic() + 30
    while addon.store.summary()["comparisons"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    summary = addon.diff_summary()
    assert summary["diffs"] == 0 and summary["noise"] == {"/api/categories/": ["$.n"]}
    assert summary["noise_file"] == str(tmp_path / "diffs.noise.json")
    saved = json.loads((tmp_path / "diffs.noise.json").read_text())
    assert [rule["path"] for rule in saved["routes"]["/api/categories/"]] == ["$.n"]
    addon.done()  # saves the counts
    again = StranglerAddon()
    with taddons.context(again) as tctx:
        tctx.configure(again, strangler_routes=str(routes_file), strangler_reload_interval="0",
                       strangler_diffs=str(tmp_path / "diffs.jsonl"))
        [rule] = again.diff_summary()["noise_rules"]
        assert (rule["route"], rule["path"], rule["evidence"], rule["suppressed"]) == ("/api/categories/", "$.n", 1, 1)
    again.done()


def test_unsafe_methods_are_not_shadowed_by_default(proxy, catalog):
    addon, _ = proxy
    through(addon, make_flow("POST", "/api/categories/", body=b"{}"))
    time.sleep(0.2)
    assert catalog.received() == []


def test_every_exchange_is_recorded_without_secrets(proxy, tmp_path, catalog):
    addon, _ = proxy
    through(addon, make_flow("POST", "/api/products/", body=b'{"a": 1}',
                             headers=[("Authorization", "Bearer t0ken"), ("X-Request-ID", "rec-1")]))
    through(addon, make_flow("GET", "/x", host="evil.example"))
    rows = list(read_recording(tmp_path / "rec.jsonl"))
    assert [(r["method"], r["path"], r["status"], r["upstream"], r["route"]) for r in rows] == [
        ("POST", "/api/products/", 200, "catalog", "/api/products/"), ("GET", "/x", 421, "proxy", "default")]
    assert rows[0]["body"] == '{"a": 1}' and rows[0]["request_id"] == "rec-1"
    assert ["Authorization", "[redacted]"] in rows[0]["headers"]
    assert "t0ken" not in (tmp_path / "rec.jsonl").read_text()
    assert rows[0]["timings"]["upstream_seconds"] > 0


def test_metrics_count_requests_by_route_upstream_and_status(proxy, catalog):
    addon, _ = proxy
    through(addon, make_flow("GET", "/api/products/"))
    through(addon, make_flow("GET", "/x", host="evil.example"))
    text = addon.metrics.exposition().decode()
    assert 'strangler_proxy_requests_total{route="/api/products/",status="200",upstream="catalog"} 1.0' in text
    assert 'strangler_proxy_rejections_total{reason="unknown_host"} 1.0' in text
    assert 'strangler_proxy_request_seconds_count{route="/api/products/",upstream="catalog"} 1.0' in text


def test_service_response_keeps_repeated_headers_and_head_keeps_its_length(proxy, catalog):
    addon, _ = proxy

    catalog.handler = lambda m, p, h, b: (
        200, [("Content-Type", "text/plain"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")], b"hello")
    flow = through(addon, make_flow("GET", "/api/products/", headers=[("Cookie", "strangler_uid=u1")]))
    assert flow.response.headers.get_all("Set-Cookie") == ["a=1", "b=2"]
    first_visit = through(addon, make_flow("GET", "/api/products/"))  # the sticky cookie goes after the upstream's
    assert first_visit.response.headers.get_all("Set-Cookie")[:2] == ["a=1", "b=2"]
    assert first_visit.response.headers.get_all("Set-Cookie")[2].startswith("strangler_uid=")
    assert flow.response.content == b"hello" and flow.response.headers["Content-Length"] == "5"
    head = through(addon, make_flow("HEAD", "/api/products/"))
    assert head.response.status_code == 200
    assert head.response.raw_content == b"" and head.response.headers["Content-Length"] == "5"


def test_run_builds_a_reverse_mode_mitmdump_command_where_set_overrides_defaults():
    import argparse

    from strangler_proxy.run import ADDON_PATH, add_arguments, mitmdump_command

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--listen-port", "9000", "--admin-port", "0", "--diffs", "d.jsonl",
                              "--set", "termlog_verbosity=info", "--set", "strangler_breaker_failures=3"])
    command = mitmdump_command(args, "http://127.0.0.1:8000", "/r/routes.yaml")
    sets = [command[i + 1] for i, part in enumerate(command) if part == "--set"]
    assert command[command.index("--mode") + 1] == "reverse:http://127.0.0.1:8000"
    assert command[command.index("--listen-port") + 1] == "9000"
    assert command[command.index("-s") + 1] == str(ADDON_PATH)
    assert "termlog_verbosity=info" in sets and "termlog_verbosity=warn" not in sets
    assert {"strangler_routes=/r/routes.yaml", "strangler_admin_port=0", "strangler_diffs=d.jsonl",
            "keep_host_header=true", "strangler_breaker_failures=3"} <= set(sets)


def test_shadow_sampling_is_decided_by_the_request_id_like_nginx_split_clients(proxy, catalog, routes_file):
    from strangler_proxy.murmur import split_bucket

    addon, tctx = proxy
    shadow_route = "    mode: shadow\n    service: catalog\n"
    routes_file.write_text(routes_file.read_text().replace(shadow_route, shadow_route + "    shadow: {sample: 0.3}\n"))
    tctx.configure(addon, strangler_routes=str(routes_file))
    ids = [f"req-{i}" for i in range(40)]
    for request_id in ids:
        through(addon, make_flow("GET", "/api/categories/", headers=[("X-Request-ID", request_id)]))
    expected = sorted(i for i in ids if split_bucket(i) < 3000)
    assert 0 < len(expected) < len(ids)
    received = catalog.wait_for(len(expected))
    time.sleep(0.1)
    assert sorted(r["headers"]["x-request-id"] for r in catalog.received()) == expected
    assert len(received) == len(expected)


def test_route_file_watcher_swaps_valid_edits_and_reports_a_bad_one_once(tmp_path, routes_file):
    import os

    from strangler_proxy.loader import load_route_file
    from strangler_proxy.route_watcher import RouteFileWatcher

    tables, errors = [], []
    text = routes_file.read_text()
    watcher = RouteFileWatcher(routes_file, interval=0.05, digest=load_route_file(routes_file).digest,
                               on_table=tables.append, on_error=errors.append)
    watcher.check()
    assert tables == [] and errors == []  # unchanged
    # Same size and (restored) mtime: stat cannot tell, the periodic forced check compares the content.
    stat = routes_file.stat()
    routes_file.write_text(text.replace("timeout: 1", "timeout: 2", 1))
    os.utime(routes_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    watcher.check()
    assert tables == []
    watcher.check(force=True)
    assert [t.routes[0].timeout for t in tables] == [2.0]
    routes_file.write_text(text.replace("mode: shadow", "mode: shadowy"))
    watcher.check()
    watcher.check(force=True)
    assert len(errors) == 1 and "routes[2].mode: unknown mode" in str(errors[0]) and len(tables) == 1


def test_running_freezes_the_startup_heap_out_of_the_collectors_sight(proxy):
    addon, tctx = proxy
    # mitmdump's proxyserver options, which taddons does not load
    tctx.options.add_option("keep_host_header", bool, False, "")
    gc.unfreeze()
    alive_at_start = [addon.table]
    try:
        assert any(o is alive_at_start for o in gc.get_objects())
        addon.running()
        assert tctx.options.keep_host_header  # the Host check needs the client's Host
        assert gc.get_freeze_count() > 0
        # What was alive at startup is out of the collected generations: full collections no longer rescan it.
        assert not any(o is alive_at_start for o in gc.get_objects())
        assert gc.isenabled()  # frozen, not switched off: new cycles are still collected
    finally:
        gc.unfreeze()


def test_mitmproxys_body_limit_is_the_route_files_and_follows_reloads(proxy):
    addon, tctx = proxy
    tctx.options.add_option("body_size_limit", str | None, None, "")  # mitmdump's proxyserver option
    oversize = OversizeBodies(addon)
    oversize.running()  # as mitmproxy calls it: refused by content length (or bytes read) beyond exactly this
    assert tctx.options.body_size_limit == "1000"
    applied = []
    oversize.loop = type("Loop", (), {"call_soon_threadsafe": lambda self, fn, *a: applied.append(fn(*a))})()
    addon._reloaded(dataclasses.replace(addon.table, settings=dataclasses.replace(addon.table.settings,
                                                                                  max_body_bytes=2000)))
    assert applied and tctx.options.body_size_limit == "2000"


def test_an_operators_body_size_limit_is_kept(proxy):
    addon, tctx = proxy
    tctx.options.add_option("body_size_limit", str | None, "5m", "")
    oversize = OversizeBodies(addon)
    oversize.running()
    assert tctx.options.body_size_limit == "5m" and not oversize.owned
