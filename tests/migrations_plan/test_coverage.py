"""The coverage gate against a live monolith and catalog service: their own OpenAPI schemas and a recording.

The issue's reproduction: the flip step's `methods: null` sent `POST .../update/` (a path the monolith serves,
seen in recorded traffic, that the service lacks) to the service. The gate names it and blocks the step;
the same check passes while the route sends only reads.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from migrations_plan.coverage import Endpoint, coverage_missing
from migrations_plan.errors import GatesBlocked
from migrations_plan.gates import FAIL, PASS, UNKNOWN
from migrations_plan.loader import load_plan
from migrations_plan.route_targets import request_service, route_service
from migrations_plan.selectors import plan_state_get, plan_status
from migrations_plan.services import plan_advance
from strangler_proxy.loader import load_route_file
from tests.migrations_plan.sidebyside_live import live_pair_start

pytestmark = [pytest.mark.slow, pytest.mark.backend_independent]  # live projects on SQLite files of their own

ROUTES = """\
upstreams:
  monolith: {monolith}
  catalog: {service}
monolith: monolith
routes:
  - prefix: /api/products/
    mode: monolith
    service: catalog
{rating}  - prefix: /api/categories/
    mode: monolith
    service: catalog
"""
RATING_STAYS = "  - pattern: /api/products/*/rating/\n    mode: monolith\n"

PLAN = """\
plan: cover
service: catalog
routes: [/api/products/, /api/categories/]
proxy_metrics: http://127.0.0.1:9/metrics
steps:
  - name: reads
    kind: cutover
    actions:
      - route: /api/products/
        set: {mode: service, methods: [GET, HEAD, OPTIONS]}
      - route: /api/categories/
        set: {mode: service, methods: [GET, HEAD, OPTIONS]}
    gates:
      coverage: {recording: recording.jsonl}
  - name: writes
    kind: flip_ownership
    actions:
      - route: /api/products/
        set: {methods: null}
      - route: /api/categories/
        set: {methods: null}
    gates:
      coverage: {recording: recording.jsonl}
"""


def recorded(method: str, path: str, status: int, upstream: str = "monolith") -> str:
    return json.dumps({"method": method, "path": path, "status": status, "upstream": upstream, "headers": []})


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    pair = live_pair_start(workdir=tmp_path_factory.mktemp("coverage"))
    yield pair
    pair.stop()


def setup(tmp_path, pair, *, rating: str = RATING_STAYS):
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES.format(monolith=pair.monolith.url, service=pair.service.url, rating=rating))
    (tmp_path / "recording.jsonl").write_text("\n".join([
        recorded("GET", "/api/products/3/?page=2", 200),
        recorded("POST", "/api/products/5/update/", 302),  # a legacy form endpoint, in no schema
        recorded("DELETE", "/api/products/5/nothing/", 404),  # the monolith has no such endpoint: not counted
        recorded("PUT", "/api/categories/9/legacy/", 200, upstream="catalog"),  # not the monolith's answer
    ]) + "\n")
    path = tmp_path / "cover.yaml"
    path.write_text(textwrap.dedent(PLAN))
    return load_plan(str(path), routes=routes), routes


def test_the_flip_that_sends_a_write_the_service_lacks_is_blocked(tmp_path, pair, state_dir):
    plan, routes = setup(tmp_path, pair)
    [reads] = plan_status(plan=plan, routes=routes)["gates"]
    assert (reads["status"], reads["value"]) == (PASS, 0), reads  # only reads go: the service has all of them
    plan_advance(plan=plan, routes=routes, actor="t")
    with pytest.raises(GatesBlocked) as blocked:
        plan_advance(plan=plan, routes=routes, actor="t")
    assert "coverage fail (catalog lacks POST /api/products/5/update/ (recorded))" in str(blocked.value)
    assert plan_state_get(plan=plan).position == 1  # the flip was not applied
    assert load_route_file(routes).routes[0].methods == frozenset({"GET", "HEAD", "OPTIONS"})


def test_a_schema_path_the_route_sends_and_the_service_lacks_is_named(tmp_path, pair, state_dir):
    # Without the pattern route, /api/products/{id}/rating/ (the monolith's reviews app) goes to the catalog.
    plan, routes = setup(tmp_path, pair, rating="")
    [reads] = plan_status(plan=plan, routes=routes)["gates"]
    assert (reads["status"], reads["value"]) == (FAIL, 1)
    assert reads["detail"] == "catalog lacks GET /api/products/{product_id}/rating/ (schema)"


def test_no_schema_is_unknown(tmp_path, pair, state_dir):
    plan, routes = setup(tmp_path, pair)
    (tmp_path / "cover.yaml").write_text(textwrap.dedent(PLAN).replace(
        "coverage: {recording: recording.jsonl}", "coverage: {schema_path: /no/schema/}", 1))
    plan = load_plan(str(tmp_path / "cover.yaml"), routes=routes)
    [reads] = plan_status(plan=plan, routes=routes)["gates"]
    assert reads["status"] == UNKNOWN
    assert reads["detail"] == f"OpenAPI schema unavailable: {pair.monolith.url}/no/schema/ answered 404"


def test_what_a_table_sends_is_the_proxys_own_decision(tmp_path):
    routes = tmp_path / "routes.yaml"
    text = ROUTES.format(monolith="http://127.0.0.1:9", service="http://127.0.0.1:9", rating=RATING_STAYS)
    text = text.replace("    mode: monolith\n    service: catalog\n  - pattern",
                        "    mode: canary\n    weight: 1\n    service: catalog\n    methods: [GET, HEAD]\n  - pattern")
    routes.write_text(text.replace("mode: monolith\n    service: catalog\n", "mode: shadow\n    service: catalog\n"))
    table = load_route_file(routes)
    assert request_service(table, method="GET", path="/api/products/1/") == "catalog"  # canary, any share
    assert request_service(table, method="POST", path="/api/products/") is None  # the route takes GET and HEAD only
    assert request_service(table, method="GET", path="/api/products/1/rating/") is None  # pattern stays
    assert request_service(table, method="GET", path="/api/categories/") == "catalog"  # shadowed
    assert request_service(table, method="POST", path="/api/categories/") is None  # writes are not shadowed
    # what replay compares: the route's service whatever its mode; nothing for a route without one
    assert route_service(table, method="POST", path="/api/categories/") == "catalog"
    assert route_service(table, method="GET", path="/api/products/1/rating/") is None
    assert route_service(table, method="GET", path="/healthz") is None
    # ops paths the route file does not expose are answered by the proxy itself (404): no service receives them,
    # and a monolith schema that lists them must not break the gate
    assert request_service(table, method="GET", path="/sync/checksums/product/") is None
    assert route_service(table, method="GET", path="/metrics") is None
    missing, sent = coverage_missing(
        table=table, service="catalog",
        monolith=[Endpoint("GET", "/api/products/{id}/", "schema"), Endpoint("HEAD", "/api/products/2/", "recorded"),
                  Endpoint("GET", "/api/categories/{slug}/tree/", "schema"),
                  Endpoint("GET", "/sync/checksums/{aggregate}/", "schema")],
        implemented=[Endpoint("GET", "/api/products/{product_id}/", "schema")])
    assert (missing, sent) == ([Endpoint("GET", "/api/categories/{slug}/tree/", "schema")], 3)
