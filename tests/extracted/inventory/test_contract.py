"""The service keeps the monolith's contract for /api/stock/... and /api/reservations/....

1. OpenAPI: both schemas (each project's own manage.py) compared for the taken-over paths: no removed
   field, changed type or changed status code.
2. Side by side: the monolith seeded by its own command, the service loaded from the monolith's dumpdata
   by its own loader, both live; the same reads and the same reservation writes get identical answers.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import requests

from tests.extracted.catalog import live
from tests.extracted.catalog.openapi_diff import contract_breaks

INVENTORY_MANAGE = live.REPO / "extracted" / "inventory" / "manage.py"
TAKEN_OVER = (
    "/api/stock/", "/api/stock/{product_id}/", "/api/reservations/", "/api/reservations/{reference}/release/",
    "/api/reservations/{reference}/confirm/", "/api/reservations/{reference}/return/",
)
TOKEN = "contract-token-0123456789"


def _schema(script: Path, workdir: Path, *extra: str, **env: str) -> dict:
    target = workdir / f"{script.parent.name}-schema.json"
    live.manage(script, "spectacular", "--format", "openapi-json", "--file", str(target), *extra,
                env=live.project_env(workdir=workdir, **env))
    return json.loads(target.read_text())


@pytest.fixture(scope="module")
def schemas(tmp_path_factory) -> tuple[dict, dict]:
    workdir = tmp_path_factory.mktemp("schemas")
    monolith = _schema(live.MONOLITH_MANAGE, workdir, DATABASE_URL=f"sqlite:///{workdir / 'monolith.sqlite3'}")
    service = _schema(INVENTORY_MANAGE, workdir, "--fail-on-warn",
                      INVENTORY_DATABASE_URL=f"sqlite:///{workdir / 'inventory.sqlite3'}")
    return monolith, service


def _only(doc: dict) -> dict:
    return {**doc, "paths": {p: item for p, item in doc["paths"].items() if p in TAKEN_OVER}}


def test_openapi_has_no_breaking_change_for_the_taken_over_paths(schemas):
    monolith, service = schemas
    assert set(TAKEN_OVER) <= set(monolith["paths"]), "the monolith no longer serves a path the service took over"
    assert contract_breaks(old_doc=_only(monolith), new_doc=service, path_prefixes=TAKEN_OVER) == []


def test_the_schema_comparison_catches_a_real_break(schemas):
    monolith, service = schemas
    broken = copy.deepcopy(service)
    components = broken["components"]["schemas"]
    del components["StockOutput"]["properties"]["quantity_available"]
    components["StockOutput"]["properties"]["product"] = {"type": "string"}
    create = broken["paths"]["/api/reservations/"]["post"]["responses"]
    create["200"] = create.pop("201")
    text = "\n".join(contract_breaks(old_doc=_only(monolith), new_doc=broken, path_prefixes=TAKEN_OVER))
    assert "GET /api/stock/{product_id}/ 200 application/json $.quantity_available: field removed" in text
    assert "GET /api/stock/{product_id}/ 200 application/json $.product: type changed" in text
    assert "POST /api/reservations/: success status changed from ['201'] to ['200']" in text


# -- side by side ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("side-by-side")
    quiet = {"STRANGLER_SYNC_RELAY_TRIGGER": "none"}
    monolith_env = live.project_env(workdir=workdir, DATABASE_URL=f"sqlite:///{workdir / 'monolith.sqlite3'}",
                                    STRANGLER_OWNERSHIP_FILE=str(workdir / "monolith-ownership.json"), **quiet)
    service_env = live.project_env(
        workdir=workdir, INVENTORY_DATABASE_URL=f"sqlite:///{workdir / 'inventory.sqlite3'}",
        STRANGLER_OWNERSHIP_FILE=str(workdir / "service-ownership.json"), INVENTORY_API_TOKENS=TOKEN, **quiet)
    # each side owns its own copy here, so both accept the same writes
    (workdir / "service-ownership.json").write_text(json.dumps({"owners": {"stock": "inventory"}}))
    dump = workdir / "inventory-dump.json"
    live.manage(live.MONOLITH_MANAGE, "migrate", "--noinput", "-v", "0", env=monolith_env)
    live.manage(live.MONOLITH_MANAGE, "seed_storefront", "--products", "40", "--users", "2", "--seed", "3",
                env=monolith_env)
    live.manage(live.MONOLITH_MANAGE, "dumpdata", "catalog.product", "inventory.stockitem", "--output", str(dump),
                env=monolith_env)
    live.manage(INVENTORY_MANAGE, "migrate", "--noinput", "-v", "0", env=service_env)
    assert "40 product(s)" in live.manage(INVENTORY_MANAGE, "inventory_import", str(dump), env=service_env)
    servers = [
        live.LiveServer(live.MONOLITH_MANAGE, env=monolith_env, log=workdir / "monolith.log"),
        live.LiveServer(INVENTORY_MANAGE, env=service_env, log=workdir / "inventory.log"),
    ]
    try:
        for server in servers:
            server.wait_ready()
        yield servers[0].url, servers[1].url, json.loads(dump.read_text())
    finally:
        for server in servers:
            server.stop()


def _ask(base: str, method: str, path: str, body=None, *, staff: bool, monolith: bool) -> tuple[int, object]:
    headers = {"Host": live.SHARED_HOST, "Accept": "application/json"}
    auth = None
    if staff and monolith:  # the monolith's seeded admin and the service's token are both staff
        auth = ("admin", "admin")
    elif staff:
        headers["Authorization"] = f"Bearer {TOKEN}"
    response = requests.request(method, base + path, json=body, headers=headers, auth=auth, timeout=10)
    return response.status_code, response.json() if response.content else None


@pytest.mark.slow
def test_same_requests_get_identical_json_from_both(both):
    monolith_url, service_url, records = both
    stocked = sorted(r["fields"]["product"] for r in records if r["model"] == "inventory.stockitem")
    products = sorted(r["pk"] for r in records if r["model"] == "catalog.product")
    plenty = next(r["fields"] for r in records if r["model"] == "inventory.stockitem"
                  and r["fields"]["quantity_on_hand"] - r["fields"]["quantity_reserved"] >= 3)
    pid = plenty["product"]
    reads = ["/api/stock/", "/api/stock/?page=2", "/api/stock/?page=99", f"/api/stock/?product={stocked[0]},{pid}",
             "/api/stock/?product=abc", "/api/stock/?product=", "/api/stock/999999/", f"/api/stock/{products[-1]}/"]
    reads += [f"/api/stock/{p}/" for p in stocked[::7]]
    writes = [
        ("POST", "/api/reservations/", {"reference": "SIDE-1", "lines": [{"product": pid, "quantity": 2}]}),
        ("POST", "/api/reservations/", {"reference": "SIDE-1", "lines": [{"product": pid, "quantity": 2}]}),
        ("POST", "/api/reservations/", {"reference": "SIDE-2", "lines": [{"product": pid, "quantity": 10**6}]}),
        ("POST", "/api/reservations/", {"reference": "SIDE-3", "lines": []}),
        ("POST", "/api/reservations/", {"reference": "SIDE-3", "lines": [{"product": pid, "quantity": 0}]}),
        ("GET", f"/api/stock/{pid}/", None),
        ("POST", "/api/reservations/SIDE-1/confirm/", None),
        ("POST", "/api/reservations/SIDE-1/confirm/", None),
        ("POST", "/api/reservations/SIDE-1/release/", None),
        ("POST", "/api/reservations/SIDE-1/return/", None),
        ("POST", "/api/reservations/NOPE/release/", None),
        ("PUT", f"/api/stock/{pid}/", {"quantity_on_hand": -5}),
        ("PUT", f"/api/stock/{pid}/", {"quantity_on_hand": 77}),
        ("GET", f"/api/stock/{pid}/", None),
    ]
    mismatches, statuses = [], set()
    for method, path, body, staff in [("GET", path, None, False) for path in reads] + [(*w, True) for w in writes]:
        expected = _ask(monolith_url, method, path, body, staff=staff, monolith=True)
        actual = _ask(service_url, method, path, body, staff=staff, monolith=False)
        statuses.add(actual[0])
        if expected != actual:
            mismatches.append(f"{method} {path}:\n  monolith {expected!r:.500}\n  service  {actual!r:.500}")
    assert not mismatches, "\n".join(mismatches)
    # real answers were compared: successes, validation errors, conflicts and unknowns
    assert {200, 201, 400, 404, 409} <= statuses
    anonymous = [_ask(url, "POST", "/api/reservations/SIDE-1/release/", staff=False, monolith=side)
                 for url, side in ((monolith_url, True), (service_url, False))]
    assert anonymous[0] == anonymous[1] and anonymous[0][0] == 403
