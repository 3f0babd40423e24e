"""Read-your-writes routing on the real nginx and mitmproxy planes.

Both planes: a write whose answer says the owner emitted events (X-Strangler-Written) gives the client a cookie,
and its reads on a read-your-writes route then go to the monolith (the owner) instead of the service; the owner's
header never reaches the client, a client's X-Strangler-Read-After never reaches an upstream, and a route with
read_your_writes: false ignores the cookie. `many` pins on both planes for settings.read_your_writes.window.
The mitmproxy plane only: positions are asked of the follower, which serves the read once it says `ok`.
Both planes count those reads under one metric name (strangler_proxy_read_your_writes_total: the mitmproxy
plane's /metrics, the nginx plane's exporter).
"""

from __future__ import annotations

import pytest

from migrations_plan.metrics import MetricsUnavailable, metrics_fetch
from servicekit.write_positions import READ_AFTER_HEADER, WRITTEN_HEADER
from tests.strangler_proxy.planes import nginx_exporter, planes_on_stubs
from tests.waiting import wait_until

pytestmark = pytest.mark.nginx

ROUTES = """\
upstreams:
  monolith: {monolith}
  catalog: {catalog}
monolith: monolith
routes:
  - prefix: /k/
    methods: [GET, HEAD, OPTIONS]
    mode: service
    service: catalog
  - prefix: /n/
    methods: [GET, HEAD, OPTIONS]
    mode: service
    service: catalog
    read_your_writes: false
settings:
  read_your_writes: {{cookie: ryw, window: 30}}
"""


@pytest.fixture(scope="module")
def planes(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ryw")
    with planes_on_stubs(workdir, ROUTES, admin=True,
                         mitmproxy_env={"STRANGLER_RYW_SECRET": "conformance-test-key"}) as planes, \
            nginx_exporter(workdir / "nginx") as nginx_metrics:
        planes.metrics_urls = {"nginx": nginx_metrics}
        if planes.admin_port:
            planes.metrics_urls["mitmproxy"] = f"http://127.0.0.1:{planes.admin_port}/metrics"
        yield planes


def read_your_writes_counts(planes, plane: str, *, at_least: int) -> dict[tuple[str, str, str], float]:
    """(route, side, reason) -> strangler_proxy_read_your_writes_total on the plane's /metrics, once it counts
    ``at_least`` (the nginx exporter reads the metrics log nginx flushes every second)."""
    def counted():
        try:
            samples = metrics_fetch(url=planes.metrics_urls[plane])
        except MetricsUnavailable:
            return None
        rows = {(labels["route"], labels["side"], labels["reason"]): value
                for _, labels, value in samples.select("strangler_proxy_read_your_writes_total")}
        return rows if sum(rows.values()) >= at_least else None

    return wait_until(counted, what=f"{at_least} read-your-writes reads counted on the {plane} plane")


def cookie_of(reply) -> str | None:
    values = [v for k, v in reply.header_list if k.lower() == "set-cookie" and v.startswith("ryw=")]
    return values[-1].split(";", 1)[0] if values else None


def client_for(planes, plane):
    return planes.upstreams, planes.client(plane)


@pytest.mark.parametrize("plane", ["nginx", "mitmproxy"])
def test_reads_after_a_write_go_to_the_owner_on_both_planes(planes, plane):
    upstreams, client = client_for(planes, plane)
    upstreams["monolith"].answer_headers = {WRITTEN_HEADER: "many"}
    try:
        assert client.send("GET", "/k/1").served_by == "catalog"
        write = client.send("POST", "/k/1", body=b"{}")
        assert write.served_by == "monolith" and WRITTEN_HEADER.lower() not in write.headers
        cookie = cookie_of(write)
        assert cookie is not None and "Max-Age=30" in [v for k, v in write.header_list if v.startswith("ryw=")][0]
        read = client.send("GET", "/k/1", {"Cookie": cookie})
        assert read.served_by == "monolith" and read.route_header == "/k/"
        assert client.send("HEAD", "/k/1", {"Cookie": cookie}).served_by == "monolith"
        assert client.send("GET", "/n/1", {"Cookie": cookie}).served_by == "catalog"  # read_your_writes: false
        assert client.send("GET", "/k/1").served_by == "catalog"  # no cookie: no write, nothing changes
        # the same metric on both planes: two reads pinned to the owner on /k/, nothing on /n/ or without cookie
        assert read_your_writes_counts(planes, plane, at_least=2) == {("/k/", "owner", "pinned"): 2}
        # a client cannot make an upstream see the proxy's header
        upstreams["catalog"].requests.clear()
        client.send("GET", "/k/2", {READ_AFTER_HEADER: "product:1:99"})
        assert READ_AFTER_HEADER.lower() not in upstreams["catalog"].requests[-1]["headers"]
        # a write that emitted nothing says nothing: no cookie
        upstreams["monolith"].answer_headers = {}
        assert cookie_of(client.send("POST", "/k/1", body=b"{}")) is None
    finally:
        upstreams["monolith"].answer_headers = {}


def test_the_mitmproxy_plane_asks_the_follower_for_the_positions(planes):
    upstreams, client = client_for(planes, "mitmproxy")
    catalog = upstreams["catalog"]
    upstreams["monolith"].answer_headers = {WRITTEN_HEADER: "product:7:3"}
    try:
        cookie = cookie_of(client.send("POST", "/k/7", body=b"{}"))
        assert cookie is not None
        for answer, served_by in ((None, "monolith"), ("behind", "monolith"), ("ok", "catalog")):
            catalog.answer_headers = {READ_AFTER_HEADER: answer} if answer else {}
            catalog.requests.clear()
            read = client.send("GET", "/k/7", {"Cookie": cookie})
            assert catalog.requests[-1]["headers"][READ_AFTER_HEADER.lower()] == "product:7:3"
            assert read.served_by == served_by, answer
            assert READ_AFTER_HEADER.lower() not in read.headers
        assert cookie_of(read) == "ryw="  # the follower has it: the cookie is cleared
        counts = read_your_writes_counts(planes, "mitmproxy", at_least=5)  # 2 pinned by the test above
        assert {key: n for key, n in counts.items() if key[2] != "pinned"} == {
            ("/k/", "owner", "behind"): 2, ("/k/", "follower", "caught_up"): 1}
        forged = cookie.rsplit(".", 1)[0] + ".AAAAAAAAAAAAAAAAAAAAAA"
        catalog.answer_headers = {}
        catalog.requests.clear()
        assert client.send("GET", "/k/7", {"Cookie": forged}).served_by == "catalog"
        assert READ_AFTER_HEADER.lower() not in catalog.requests[-1]["headers"]
    finally:
        upstreams["monolith"].answer_headers = {}
        catalog.answer_headers = {}
