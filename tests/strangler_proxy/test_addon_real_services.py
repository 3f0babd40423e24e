"""The real thing: the monolith and the extracted catalog service behind `strangler-proxy run` in shadow mode.

Both projects run as real processes on the same seeded data; the shadow diff must find nothing on the
catalog API (no false positives on real DRF payloads, pagination links included), and must point at the
one field when the service's data really differs.
"""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from tests.extracted.catalog import live

from .running_proxy import Proxy

ROUTES = """\
upstreams:
  monolith: {monolith}
  catalog: {catalog}
monolith: monolith
routes:
  - prefix: /api/products/
    mode: shadow
    service: catalog
    diff:
      headers: [content-type]
  - prefix: /api/categories/
    mode: shadow
    service: catalog
"""
PATHS = [
    "/api/products/", "/api/products/?page=2", "/api/products/?ordering=-price", "/api/products/?q=a",
    "/api/products/?min_price=10&max_price=500", "/api/products/1/", "/api/products/2/", "/api/products/999999/",
    "/api/products/?min_price=abc", "/api/categories/", "/api/categories/1/",
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("real-services")
    quiet = {"STRANGLER_SYNC_RELAY_TRIGGER": "none"}
    service_db = workdir / "catalog.sqlite3"
    monolith_env = live.project_env(workdir=workdir, DATABASE_URL=f"sqlite:///{workdir / 'monolith.sqlite3'}",
                                    **quiet)
    service_env = live.project_env(workdir=workdir, CATALOG_DATABASE_URL=f"sqlite:///{service_db}", **quiet)
    dump = workdir / "catalog-dump.json"
    live.manage(live.MONOLITH_MANAGE, "migrate", "--noinput", "-v", "0", env=monolith_env)
    live.manage(live.MONOLITH_MANAGE, "seed_storefront", "--products", "40", "--users", "1", "--seed", "3",
                env=monolith_env)
    live.manage(live.MONOLITH_MANAGE, "dumpdata", "catalog.category", "catalog.product", "--output", str(dump),
                env=monolith_env)
    live.manage(live.CATALOG_MANAGE, "migrate", "--noinput", "-v", "0", env=service_env)
    live.manage(live.CATALOG_MANAGE, "catalog_import", str(dump), env=service_env)
    servers = [live.LiveServer(live.MONOLITH_MANAGE, env=monolith_env, log=workdir / "monolith.log"),
               live.LiveServer(live.CATALOG_MANAGE, env=service_env, log=workdir / "catalog.log")]
    proxy = None
    try:
        for server in servers:
            server.wait_ready()
        proxy = Proxy(workdir, servers[0], servers[1])
        proxy.install(ROUTES.format(monolith=servers[0].url, catalog=servers[1].url))
        yield proxy, service_db
    finally:
        if proxy is not None:
            proxy.stop()
        for server in servers:
            server.stop()


def comparisons_settle(proxy: Proxy, count: int, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        summary = proxy.admin("/diffs")
        if summary["comparisons"] + sum(r["errors"] for r in summary["routes"].values()) >= count:
            return summary
        time.sleep(0.1)
    raise AssertionError(f"only {proxy.admin('/diffs')['comparisons']} of {count} comparisons")


@pytest.mark.slow
def test_shadowing_the_extracted_catalog_finds_no_false_differences_and_a_real_one(stack):
    proxy, service_db = stack
    statuses = {}
    for path in PATHS:
        status, headers, body = proxy.request("GET", path)
        assert headers["x-strangler-upstream"] == "monolith"
        statuses[path] = status
    assert statuses["/api/products/"] == 200 and statuses["/api/products/999999/"] == 404
    assert statuses["/api/products/?min_price=abc"] == 400
    summary = comparisons_settle(proxy, len(PATHS))
    assert summary["comparisons"] == len(PATHS), summary
    assert summary["diffs"] == 0, summary["recent"]

    product = json.loads(proxy.request("GET", "/api/products/1/")[2])
    comparisons_settle(proxy, len(PATHS) + 1)  # that request's own shadow must not see the drift below
    with sqlite3.connect(service_db) as db:  # the service's copy drifts: exactly what shadowing must catch
        db.execute("UPDATE catalog_service_product SET price = price + 1 WHERE id = 1")
    proxy.request("GET", "/api/products/1/")
    summary = comparisons_settle(proxy, len(PATHS) + 2)
    assert summary["diffs"] == 1
    difference = summary["recent"][-1]
    assert difference["path"] == "/api/products/1/"
    assert [d["path"] for d in difference["differences"]] == ["$.price"]
    assert difference["differences"][0]["expected"] == product["price"]
