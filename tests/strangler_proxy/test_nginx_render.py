"""The rendered nginx config: what it contains, that nginx accepts it, and behaviour conformance does not cover."""

from __future__ import annotations

import json
import socket
import tempfile
import time

import pytest

from strangler_proxy.loader import DEFAULT_ROUTE_FILE, load_route_file, parse_route_text
from strangler_proxy.murmur import in_canary, murmurhash2
from strangler_proxy.nginx.control import NginxInstance, config_test
from strangler_proxy.nginx.render import NginxOptions, render_nginx
from strangler_proxy.override import override_token
from tests.strangler_proxy.planes import Client, start_nginx, wait_for_port
from tests.strangler_proxy.upstreams import NamedUpstream, free_port

COMPLEX = """\
upstreams:
  monolith: http://127.0.0.1:{monolith}
  catalog: http://127.0.0.1:{catalog}
  orders: http://127.0.0.1:{orders}
monolith: monolith
sticky: {{cookie: sid, header: X-Session}}
override: {{header: X-Force-Upstream, secret_env: MY_SECRET}}
settings: {{route_headers: {route_headers}, max_body_bytes: 2048, diff_endpoint: "127.0.0.1:{diff}"}}
routes:
  - prefix: /zero/
    mode: canary
    weight: 0
    service: catalog
    fallback: true
  - prefix: /all/
    mode: canary
    weight: 100
    service: catalog
    fallback: true
  - prefix: /some/
    mode: canary
    weight: 37
    service: catalog
    fallback: true
    shadow: {{sample: 0.3}}
  - path: /exact
    methods: [POST]
    mode: service
    service: orders
    timeout: 2.5
  - prefix: /slow/
    mode: service
    service: orders
    fallback: true
    timeout: 0.5
  - prefix: /shadow/
    mode: shadow
    service: catalog
    shadow: {{unsafe_methods: true}}
  - prefix: /sampled/
    mode: shadow
    service: catalog
    shadow: {{sample: 0.5}}
  - prefix: /never/
    mode: shadow
    service: catalog
    shadow: {{sample: 0.00001}}
"""


def complex_table(*, route_headers: bool = True, ports: dict[str, int] | None = None):
    ports = ports or {"monolith": 8000, "catalog": 8001, "orders": 8002, "diff": 8790}
    return parse_route_text(COMPLEX.format(route_headers=str(route_headers).lower(), **ports), source="c.yaml")


def render(table, tmp_path, secret=None):
    return render_nginx(table, NginxOptions(runtime_dir=tmp_path, listen="127.0.0.1:9999", override_secret=secret))


def test_everything_the_instance_writes_is_under_its_runtime_dir(tmp_path):
    text = render(complex_table(), tmp_path)
    run = str(tmp_path.resolve())
    for directive in ("pid", "error_log", "access_log", "client_body_temp_path", "proxy_temp_path",
                      "fastcgi_temp_path", "uwsgi_temp_path", "scgi_temp_path"):
        line = next(line.strip() for line in text.splitlines() if line.strip().startswith(directive + " "))
        if directive.endswith("_temp_path") and "\nuser " in text:  # workers as another user: see temp_path()
            assert line.split()[1].startswith(f"{tempfile.gettempdir()}/strangler-nginx-"), line
            continue
        assert line.split()[1].startswith(run + "/"), line
    assert "include" not in text and "/etc/nginx" not in text


def test_canary_weights_render_as_split_clients_only_between_0_and_100(tmp_path):
    text = render(complex_table(), tmp_path)
    assert text.count('split_clients "$strangler_key"') == 1
    assert "    37% 1;\n" in text.replace("        ", "    ")
    assert "map $cookie_sid $strangler_key" in text and "map $http_x_session $strangler_key_fallback" in text


def test_overrides_are_precomputed_only_with_a_secret_and_always_stripped(tmp_path):
    without = render(complex_table(), tmp_path)
    assert "catalog." not in without
    with_secret = render(complex_table(), tmp_path, secret="k")
    for name in ("monolith", "catalog", "orders"):
        for methods in ("safe", "any"):
            token = override_token("k", name, methods=methods)
            assert f'    {token} "{name}|{methods}|{token.split(".")[3]}";' in with_secret
    assert "map $http_x_force_upstream $strangler_force_first {" in with_secret  # the token: up to the first comma
    assert "map $strangler_force_first $strangler_token {" in with_secret
    assert with_secret.count('proxy_set_header X-Force-Upstream "";') == with_secret.count("proxy_pass ")


def test_settings_and_timeouts_and_headers(tmp_path):
    text = render(complex_table(), tmp_path)
    assert "client_max_body_size 2048;" in text
    assert "proxy_read_timeout 500ms;" in text and "proxy_read_timeout 2500ms;" in text
    assert 'add_header X-Strangler-Route "/some/" always;' in text
    assert "server 127.0.0.1:8790;" in text
    quiet = render(complex_table(route_headers=False), tmp_path)
    assert "X-Strangler-Route" not in quiet.replace("$sent_http_x_strangler_route", "")


@pytest.mark.nginx
def test_nginx_accepts_the_shipped_and_a_complex_route_file(tmp_path):
    for name, table in (("shipped", load_route_file(DEFAULT_ROUTE_FILE)), ("complex", complex_table())):
        run = tmp_path / name
        run.mkdir()
        conf = run / "nginx.conf"
        conf.write_text(render(table, run, secret="k"))
        config_test(conf, run)


@pytest.fixture
def live(tmp_path):
    upstreams = {"monolith": NamedUpstream("monolith"), "catalog": NamedUpstream("catalog"),
                 "orders": NamedUpstream("orders", delay=1.5), "diff": NamedUpstream("diff")}
    table = complex_table(ports={name: u.port for name, u in upstreams.items()})
    instance = start_nginx(table, tmp_path / "nginx", free_port(), override_secret=None)
    client = Client(int(instance.options.listen.rsplit(":", 1)[1]))
    yield upstreams, client
    client.close()
    instance.stop()
    for upstream in upstreams.values():
        upstream.close()


@pytest.mark.nginx
def test_timeout_falls_back_to_the_monolith_for_safe_methods_only(live):
    _upstreams, client = live
    reply = client.send("GET", "/slow/1")
    assert (reply.status, reply.served_by, reply.upstream_header) == (200, "monolith", "monolith")
    assert client.send("POST", "/slow/1").status == 504


@pytest.mark.nginx
def test_service_5xx_falls_back_but_monolith_5xx_is_passed_through(live):
    upstreams, client = live
    upstreams["catalog"].status = 503
    reply = client.send("GET", "/all/x")  # 100% canary: the service answered 503
    assert (reply.status, reply.served_by) == (200, "monolith")
    inside = next(f"k{i}" for i in range(100) if in_canary(f"k{i}", 37))
    outside = next(f"k{i}" for i in range(100) if not in_canary(f"k{i}", 37))
    reply = client.send("GET", "/some/x", {"Cookie": f"sid={inside}"})
    assert (reply.status, reply.served_by) == (200, "monolith")
    upstreams["monolith"].status = 500
    before = len(upstreams["monolith"].requests)
    reply = client.send("GET", "/zero/x")  # 0% canary: the monolith's own 500 is not retried on itself
    assert (reply.status, reply.served_by) == (500, "monolith")
    reply = client.send("GET", "/some/x", {"Cookie": f"sid={outside}"})  # canary picked the monolith: same
    assert (reply.status, reply.served_by) == (500, "monolith")
    assert len(upstreams["monolith"].requests) == before + 2


@pytest.mark.nginx
def test_body_size_limit_and_hop_by_hop_headers(live):
    upstreams, client = live
    assert client.send("POST", "/x", body=b"x" * 4096).status == 413
    reply = client.send("POST", "/x", {"Proxy-Authorization": "Basic c2VjcmV0", "TE": "trailers",
                                       "Keep-Alive": "timeout=5", "X-Request-ID": "hop-1"}, body=b"ok")
    assert reply.status == 200
    seen = next(r for r in upstreams["monolith"].requests if r["headers"].get("x-request-id") == "hop-1")
    assert seen["body"] == "ok"
    for header in ("proxy-authorization", "te", "keep-alive", "upgrade"):
        assert header not in seen["headers"]
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"


@pytest.mark.nginx
def test_large_bodies_go_through_temp_files_in_the_private_runtime_dir(live, tmp_path):
    upstreams, client = live
    big = b"b" * 1500  # below the 2048-byte limit of this table, so use a second instance with a roomy limit
    assert client.send("POST", "/x", body=big).status == 200
    roomy = parse_route_text(f"upstreams:\n  monolith: {upstreams['monolith'].url}\nmonolith: monolith\n",
                             source="roomy.yaml")
    runtime = tmp_path / "private"
    runtime.mkdir(mode=0o700)
    instance = start_nginx(roomy, runtime / "nginx", free_port(), override_secret=None)
    other = Client(int(instance.options.listen.rsplit(":", 1)[1]))
    try:
        reply = other.send("POST", "/upload", body=b"u" * 300_000)  # > client_body_buffer_size and proxy_buffers
        assert reply.status == 200 and len(reply.body) > 300_000  # the echo comes back through proxy temp files
    finally:
        other.close()
        instance.stop()


@pytest.mark.nginx
def test_unsafe_methods_are_mirrored_when_the_route_allows(live):
    upstreams, client = live
    reply = client.send("DELETE", "/shadow/7", {"X-Request-ID": "mirror-del"})
    assert (reply.status, reply.served_by) == (200, "monolith")
    deadline = time.monotonic() + 5
    while not any(r["headers"].get("x-request-id") == "mirror-del" for r in upstreams["diff"].requests):
        assert time.monotonic() < deadline, "no mirrored DELETE reached the diff endpoint"
        time.sleep(0.05)


@pytest.mark.nginx
def test_shadow_sampling_is_keyed_on_the_request_id(live):
    upstreams, client = live
    ids = [f"sample-{i}" for i in range(60)]
    boundary = 5000 * 0xFFFFFFFF // 10000  # split_clients 50.00%
    expected = {i for i in ids if murmurhash2(i.encode()) < boundary}
    assert 10 < len(expected) < 50
    for request_id in ids:
        assert client.send("GET", "/sampled/x", {"X-Request-ID": request_id}).status == 200
        client.send("GET", "/never/x", {"X-Request-ID": "never-" + request_id})
    deadline = time.monotonic() + 5
    while True:
        mirrored = {r["headers"].get("x-request-id") for r in upstreams["diff"].requests}
        if expected <= mirrored or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    client.send("GET", "/x")  # the mirror of the last request has finished once the connection serves another
    mirrored = {r["headers"].get("x-request-id") for r in upstreams["diff"].requests}
    assert mirrored == expected


@pytest.mark.nginx
def test_a_hung_diff_endpoint_costs_the_next_request_at_most_the_mirror_timeout(tmp_path):
    monolith, catalog, diff = NamedUpstream("monolith"), NamedUpstream("catalog"), NamedUpstream("diff", delay=4)
    table = parse_route_text(
        f"upstreams:\n  monolith: {monolith.url}\n  catalog: {catalog.url}\nmonolith: monolith\n"
        f"settings: {{diff_endpoint: '127.0.0.1:{diff.port}'}}\n"
        "routes:\n  - prefix: /s/\n    mode: shadow\n    service: catalog\n",
        source="hung.yaml",
    )
    instance = start_nginx(table, tmp_path / "nginx", free_port(), override_secret=None)
    client = Client(int(instance.options.listen.rsplit(":", 1)[1]))
    try:
        started = time.monotonic()
        assert client.send("GET", "/s/1").served_by == "monolith"
        assert time.monotonic() - started < 0.5  # the client's own answer never waits for the mirror
        started = time.monotonic()
        assert client.send("GET", "/s/2").served_by == "monolith"  # same connection: waits for mirror #1
        assert 0.5 < time.monotonic() - started < 2.5
    finally:
        client.close()
        instance.stop()
        for upstream in (monolith, catalog, diff):
            upstream.close()


@pytest.mark.nginx
def test_canary_mirror_names_the_picked_primary_and_the_other_side(live):
    upstreams, client = live
    boundary = 3000 * 0xFFFFFFFF // 10000  # sample 0.3
    sent = {}
    for i in range(40):
        sid, request_id = f"sid-{i}", f"canary-mirror-{i}"
        primary = "catalog" if in_canary(sid, 37) else "monolith"
        reply = client.send("GET", f"/some/{i}", {"Cookie": f"sid={sid}", "X-Request-ID": request_id})
        assert reply.served_by == primary
        if murmurhash2(request_id.encode()) < boundary:
            sent[request_id] = primary
    assert {"catalog", "monolith"} <= set(sent.values())
    client.send("GET", "/x")  # the last mirror is done once the connection serves another request
    deadline = time.monotonic() + 5
    while len([r for r in upstreams["diff"].requests if r["headers"]["x-request-id"] in sent]) < len(sent):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    mirrored = {r["headers"]["x-request-id"]: r["headers"] for r in upstreams["diff"].requests
                if r["headers"]["x-request-id"].startswith("canary-mirror-")}
    assert set(mirrored) == set(sent)
    for request_id, headers in mirrored.items():
        primary = sent[request_id]
        assert headers["x-strangler-mirror-route"] == "/some/"
        assert headers["x-strangler-mirror-primary"] == primary
        assert headers["x-strangler-mirror-shadow"] == ("monolith" if primary == "catalog" else "catalog")


def _location(text: str, head: str) -> str:
    start = text.index(f"location {head} {{")
    return text[start:text.index("\n        }", start)]


def test_each_location_serves_its_likely_target_in_place_and_jumps_only_for_the_others(tmp_path):
    text = render(complex_table(), tmp_path)
    root = _location(text, '^~ "/"')  # one target for every method and no override: no dispatch at all
    assert "proxy_pass http://monolith;" in root and "return 599" not in root
    every = _location(text, '^~ "/all/"')  # 100% canary: GETs get the fallback, other methods jump
    assert "proxy_intercept_errors on;" in every and "return 599" in every
    assert "\n            recursive_error_pages on;" not in every.split("recursive_error_pages on;", 1)[1]
    some = _location(text, '^~ "/some/"')  # 37% canary: the monolith side, without fallback, is served in place
    assert "proxy_intercept_errors" not in some and "mirror " in some
    assert "$uri" not in text.split("server {", 1)[0]  # no pattern routes: the dispatch is exact-key maps only
    with_secret = render(complex_table(), tmp_path, secret="k")
    assert "return 599" in _location(with_secret, '^~ "/"')  # a valid override token jumps to its upstream


@pytest.mark.nginx
def test_refusals_name_their_reason_and_a_prefix_without_its_slash_is_routed_not_redirected(live):
    _upstreams, client = live
    for target, code in (("http://localhost/all/1", "absolute_form_refused"), ("/all%2F1", "path_rejected"),
                         ("/all/%5c1", "path_rejected"), ("/all\\1", "path_rejected")):
        reply = client.send("GET", target)
        assert (reply.status, json.loads(reply.body)["error"]["code"]) == (400, code), target
    reply = client.send("GET", "/all/1?next=%2F")
    assert (reply.status, reply.served_by) == (200, "catalog")
    reply = client.send("GET", "/all")  # not /all/: the default route, where nginx would answer 301
    assert (reply.status, reply.served_by, reply.route_header) == (200, "monolith", "default")


@pytest.mark.nginx
def test_the_host_header_reaches_the_upstream_as_sent_and_a_request_without_one_is_answered(live, tmp_path):
    upstreams, client = live
    reply = client.send("GET", "/x", {"Host": "LocalHost:9999", "X-Request-ID": "host-1"})
    assert reply.status == 200
    seen = next(r for r in upstreams["monolith"].requests if r["headers"].get("x-request-id") == "host-1")
    assert seen["headers"]["host"] == "LocalHost:9999"
    raw = b"GET /x HTTP/1.0\r\nX-Request-ID: host-2\r\n\r\n"  # HTTP/1.0 may leave the Host out
    port = client.port
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(raw)
        assert conn.makefile("rb").readline().startswith(b"HTTP/1.1 421")  # allowlisted names only
    any_port = free_port()
    anyhost = NginxInstance(NginxOptions(runtime_dir=tmp_path / "any", listen=f"127.0.0.1:{any_port}", hosts=("*",)))
    anyhost.reload(complex_table(ports={name: u.port for name, u in upstreams.items()}))
    try:
        wait_for_port(any_port)
        with socket.create_connection(("127.0.0.1", any_port), timeout=5) as c:
            c.sendall(raw)
            assert c.makefile("rb").readline().startswith(b"HTTP/1.1 200")
        seen = next(r for r in upstreams["monolith"].requests if r["headers"].get("x-request-id") == "host-2")
        assert seen["headers"]["host"]  # the server name stands in: never a request without a Host upstream
    finally:
        anyhost.stop()
