"""diff_endpoint: nginx's mirrored copies are diffed with the mitmproxy plane's code; also behind a real nginx."""

from __future__ import annotations

import http.client
import json
import time
import urllib.request

import pytest

from strangler_proxy.diff_endpoint import DiffEndpoint
from strangler_proxy.loader import parse_route_text
from strangler_proxy.spec import MIRROR_PRIMARY_HEADER, MIRROR_ROUTE_HEADER, MIRROR_SHADOW_HEADER
from tests.waiting import REQUEST_TIMEOUT, wait_until

from .upstream_servers import UpstreamServer, free_port, json_answer

ROUTES = """\
upstreams:
  monolith: {monolith}
  catalog: {catalog}
monolith: monolith
settings:
  diff_endpoint: 127.0.0.1:{diff_port}
routes:
  - prefix: /api/categories/
    mode: shadow
    service: catalog
    diff:
      ignore: ["$.generated_at"]
"""


@pytest.fixture
def upstreams():
    monolith = UpstreamServer("monolith", lambda m, p, h, b: json_answer(
        200, {"items": [1, 2], "generated_at": time.time(), "path": p})).start()
    catalog = UpstreamServer("catalog", lambda m, p, h, b: json_answer(
        200, {"items": [1, 3], "generated_at": 0, "path": p})).start()
    yield monolith, catalog
    monolith.stop()
    catalog.stop()


@pytest.fixture
def table(upstreams):
    monolith, catalog = upstreams
    return parse_route_text(ROUTES.format(monolith=monolith.url, catalog=catalog.url, diff_port=free_port()),
                            source="routes.yaml")


@pytest.fixture
def endpoint(table):
    host, _, port = table.settings.diff_endpoint.rpartition(":")
    running = DiffEndpoint(table=table, host=host, port=int(port)).start()
    yield running
    running.stop()


def send(port: int, method: str, path: str, headers: dict[str, str], body: bytes = b""):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def mirror_headers(route="/api/categories/", primary="monolith", shadow="catalog"):
    return {MIRROR_ROUTE_HEADER: route, MIRROR_PRIMARY_HEADER: primary, MIRROR_SHADOW_HEADER: shadow,
            "Host": "shop.example", "X-Request-ID": "mirror-1"}


def wait_for_comparisons(endpoint: DiffEndpoint, count: int) -> dict:
    return wait_until(lambda: (summary := endpoint.summary())["comparisons"] >= count and summary,
                      interval=0.02, what=lambda: f"{count} comparisons: {endpoint.summary()}")


def test_mirrored_copy_is_answered_at_once_then_both_sides_are_fetched_and_diffed(endpoint, upstreams):
    monolith, catalog = upstreams
    status, payload = send(endpoint.port, "GET", "/api/categories/?page=2",
                           {**mirror_headers(), "X-Strangler-Identity": "forged"})
    assert (status, payload) == (202, {"queued": True})
    summary = wait_for_comparisons(endpoint, 1)
    route = summary["routes"]["/api/categories/"]
    assert route["diffs"] == 1 and route["top_fields"] == {"$.items[1]": 1}  # generated_at is ignored
    # Primary, shadow, and the monolith again for noise; the client's Host and request id are kept.
    assert [r["path"] for r in monolith.received()] == ["/api/categories/?page=2"] * 2
    assert catalog.received()[0]["headers"]["host"] == "shop.example"
    assert catalog.received()[0]["headers"]["x-request-id"] == "mirror-1"
    assert not any(h.lower().startswith("x-strangler-mirror") for h in catalog.received()[0]["headers"])
    assert "x-strangler-identity" not in catalog.received()[0]["headers"]  # only the monolith's signed one goes on
    expected_line = 'strangler_proxy_shadow_diffs_total{route="/api/categories/"} 1.0'

    def metrics() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{endpoint.port}/metrics", timeout=REQUEST_TIMEOUT) as response:
            return response.read().decode()

    # The counter moves just after the summary does.
    wait_until(lambda: expected_line in metrics(), interval=0.02, what=f"{expected_line!r} in /metrics")


def test_bad_mirror_headers_are_refused(endpoint, upstreams):
    status, payload = send(endpoint.port, "GET", "/api/categories/", mirror_headers(route="/nope/"))
    assert status == 400 and payload["error"]["code"] == "bad_mirror"
    status, _ = send(endpoint.port, "GET", "/api/categories/", mirror_headers(shadow="monolith"))
    assert status == 400
    status, _ = send(endpoint.port, "GET", "/api/categories/", mirror_headers(shadow="elsewhere"))
    assert status == 400
    assert endpoint.summary()["skipped"] == {"bad_headers": 3}
    assert upstreams[0].received() == [] and upstreams[1].received() == []


def test_unsafe_methods_are_never_replayed(endpoint, upstreams):
    status, payload = send(endpoint.port, "POST", "/api/categories/", mirror_headers(), body=b"{}")
    assert status == 202 and payload["queued"] is False
    time.sleep(0.1)
    assert upstreams[0].received() == [] and upstreams[1].received() == []
    assert endpoint.summary()["skipped"] == {"unsafe_method": 1}


@pytest.mark.nginx
def test_rendered_nginx_mirrors_shadow_traffic_to_the_diff_endpoint(endpoint, table, upstreams, tmp_path):
    from .planes import start_nginx

    port = free_port()
    nginx = start_nginx(table, tmp_path / "nginx", port, override_secret=None)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
        connection.request("GET", "/api/categories/?q=1", headers={"Host": "localhost"})
        response = connection.getresponse()
        body = json.loads(response.read())
        connection.close()
        assert response.status == 200 and body["items"] == [1, 2]  # the client got the monolith's answer
        summary = wait_for_comparisons(endpoint, 1)
    finally:
        nginx.stop()
    assert summary["routes"]["/api/categories/"]["top_fields"] == {"$.items[1]": 1}
    assert [r["path"] for r in upstreams[1].received()] == ["/api/categories/?q=1"]


def test_learned_noise_is_reported_with_its_counts_and_kept_in_the_route_files_noise_file(tmp_path):
    served = iter(range(1000))
    monolith = UpstreamServer("monolith", lambda m, p, h, b: json_answer(
        200, {"items": [1, 2], "served": next(served)})).start()
    catalog = UpstreamServer("catalog", lambda m, p, h, b: json_answer(200, {"items": [1, 3], "served": -1})).start()
    routes = tmp_path / "routes.yaml"
    text = ROUTES.format(monolith=monolith.url, catalog=catalog.url, diff_port=free_port()).replace(
        "settings:\n", "settings:\n  noise: {file: learned/noise.json, expiry: 3600}\n")
    table = parse_route_text(text, source=str(routes))
    try:
        endpoint = DiffEndpoint(table=table).start()
        try:
            for _ in range(2):
                assert send(endpoint.port, "GET", "/api/categories/", mirror_headers())[0] == 202
                summary = wait_for_comparisons(endpoint, _ + 1)
        finally:
            endpoint.stop()
        assert summary["diffs"] == 2  # items[1] is still a difference; `served` is noise
        assert summary["noise"] == {"/api/categories/": ["$.served"]}
        [rule] = summary["noise_rules"]
        assert (rule["path"], rule["evidence"], rule["suppressed"], rule["kinds"]) == ("$.served", 2, 2, ["changed"])
        assert summary["noise_file"] == str(tmp_path / "learned" / "noise.json")
        # The next endpoint starts with what this one learned.
        again = DiffEndpoint(table=table).start()
        try:
            assert [(r["path"], r["evidence"], r["suppressed"]) for r in again.summary()["noise_rules"]] == [
                ("$.served", 2, 2)]
        finally:
            again.stop()
    finally:
        monolith.stop()
        catalog.stop()
