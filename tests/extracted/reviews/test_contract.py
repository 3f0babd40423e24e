"""The service keeps the monolith's contract for /api/reviews/... and /api/products/{id}/rating/, on real data.

1. OpenAPI: both schemas compared for the taken-over paths (no removed field, changed type or status code).
2. Live, through the real data plane: the monolith seeded by its own command and backfilled with
   ``sync_backfill --direct`` to the service's ``sync_consume``; the same reads get identical JSON.
3. The flip: ownership of "review" moves to the service; a customer of the monolith writes through the
   service (who they are: the signed identity of the monolith's identity endpoint), the service's relay publishes, the
   monolith's consumer follows, and the product page's average rating on the monolith is the service's.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.extracted.catalog import live
from tests.extracted.catalog.openapi_diff import contract_breaks
from tests.identity import edge_identity
from tests.waiting import REQUEST_TIMEOUT, wait_until

REVIEWS_MANAGE = live.REPO / "extracted" / "reviews" / "manage.py"
TAKEN_OVER = ("/api/reviews/", "/api/reviews/{review_id}/", "/api/products/{product_id}/rating/")
HOST = {"Host": live.SHARED_HOST, "Accept": "application/json"}


def _schema(script: Path, workdir: Path, *extra: str, **env: str) -> dict:
    target = workdir / f"{script.parent.name}-schema.json"
    live.manage(script, "spectacular", "--format", "openapi-json", "--file", str(target), *extra,
                env=live.project_env(workdir=workdir, **env))
    return json.loads(target.read_text())


@pytest.fixture(scope="module")
def schemas(tmp_path_factory) -> tuple[dict, dict]:
    workdir = tmp_path_factory.mktemp("schemas")
    monolith = _schema(live.MONOLITH_MANAGE, workdir, DATABASE_URL=f"sqlite:///{workdir / 'monolith.sqlite3'}")
    service = _schema(REVIEWS_MANAGE, workdir, "--fail-on-warn",
                      REVIEWS_DATABASE_URL=f"sqlite:///{workdir / 'reviews.sqlite3'}")
    return monolith, service


def _only(doc: dict) -> dict:
    return {**doc, "paths": {p: item for p, item in doc["paths"].items() if p in TAKEN_OVER}}


def test_openapi_has_no_breaking_change_for_the_taken_over_paths(schemas):
    monolith, service = schemas
    assert set(TAKEN_OVER) <= set(monolith["paths"])
    assert contract_breaks(old_doc=_only(monolith), new_doc=service, path_prefixes=TAKEN_OVER) == []


def test_the_schema_comparison_catches_a_real_break(schemas):
    monolith, service = schemas
    broken = copy.deepcopy(service)
    components = broken["components"]["schemas"]
    del components["ReviewOutput"]["properties"]["username"]
    components["RatingSummary"]["properties"]["count"] = {"type": "string"}
    text = "\n".join(contract_breaks(old_doc=_only(monolith), new_doc=broken, path_prefixes=TAKEN_OVER))
    assert "GET /api/reviews/{review_id}/ 200 application/json $.username: field removed" in text
    assert "GET /api/products/{product_id}/rating/ 200 application/json $.count: type changed" in text


# -- live, through the data plane ------------------------------------------------------------------------------------


def _background(script: Path, *args: str, env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(script), *args], cwd=live.REPO, env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reviews-live")
    common = {"STRANGLER_SYNC_RELAY_TRIGGER": "none", "STRANGLER_OWNERSHIP_FILE": str(workdir / "ownership.json")}
    monolith_env = live.project_env(workdir=workdir, DATABASE_URL=f"sqlite:///{workdir / 'monolith.sqlite3'}",
                                    **common)
    live.manage(live.MONOLITH_MANAGE, "migrate", "--noinput", "-v", "0", env=monolith_env)
    live.manage(live.MONOLITH_MANAGE, "seed_storefront", "--products", "40", "--users", "4", "--seed", "11",
                env=monolith_env)
    monolith = live.LiveServer(live.MONOLITH_MANAGE, env=monolith_env, log=workdir / "monolith.log")
    # who a customer is comes with the request: the identity the monolith signed (tests.identity.edge_identity
    # asks its endpoint as a proxy plane would); both processes use the DEBUG development key
    service_env = live.project_env(workdir=workdir, REVIEWS_DATABASE_URL=f"sqlite:///{workdir / 'reviews.sqlite3'}",
                                   **common)
    live.manage(REVIEWS_MANAGE, "migrate", "--noinput", "-v", "0", env=service_env)
    consumer = _background(REVIEWS_MANAGE, "sync_consume", env=service_env, log=workdir / "reviews-consume.log")
    # the first copy, through the data plane while the consumer runs: products (which exist, on sale), reviews
    for aggregate in ("product", "review"):
        live.manage(live.MONOLITH_MANAGE, "sync_backfill", "--aggregate", aggregate, "--direct", "--no-progress",
                    env=monolith_env)
    service = live.LiveServer(REVIEWS_MANAGE, env=service_env, log=workdir / "reviews.log")
    try:
        monolith.wait_ready()
        service.wait_ready()
        expected = requests.get(f"{monolith.url}/api/reviews/", headers=HOST, timeout=REQUEST_TIMEOUT).json()["count"]
        assert expected > 10
        wait_until(lambda: _get(service.url, "/api/reviews/")[1]["count"] == expected,
                   what="the backfill to reach the service")
        yield {"monolith": monolith.url, "service": service.url, "monolith_env": monolith_env,
               "service_env": service_env, "workdir": workdir}
    finally:
        consumer.terminate()
        consumer.wait(timeout=REQUEST_TIMEOUT)
        service.stop()
        monolith.stop()


def _get(base: str, path: str, auth=None) -> tuple[int, object]:
    response = requests.get(base + path, headers=HOST, auth=auth, timeout=REQUEST_TIMEOUT)
    return response.status_code, response.json()


@pytest.mark.slow
def test_same_reads_get_identical_json_from_both(stack):
    monolith, service = stack["monolith"], stack["service"]
    reviews = _get(monolith, "/api/reviews/?page_size=100")[1]["results"]
    reviewed = sorted({r["product"] for r in reviews})
    paths = ["/api/reviews/", "/api/reviews/?page=2", "/api/reviews/?page_size=7&page=2", "/api/reviews/?page=99",
             f"/api/reviews/?product={reviewed[0]}", "/api/reviews/?product=abc", "/api/reviews/999999/",
             "/api/products/999999/rating/", f"/api/reviews/{reviews[-1]['id']}/"]
    paths += [f"/api/products/{pid}/rating/" for pid in reviewed[:6]]
    mismatches = [f"{p}:\n  monolith {_get(monolith, p)!r:.400}\n  service  {_get(service, p)!r:.400}"
                  for p in paths if _get(monolith, p) != _get(service, p)]
    assert not mismatches, "\n".join(mismatches)
    assert {_get(service, p)[0] for p in paths} >= {200, 400, 404}


@pytest.mark.slow
def test_before_the_flip_the_service_refuses_writes_with_the_customer_known(stack):
    known = edge_identity(stack["monolith"], audience="reviews", auth=("user1", "password"))
    response = requests.post(f"{stack['service']}/api/reviews/", json={"product": 1, "rating": 5},
                             headers={**HOST, **known}, timeout=REQUEST_TIMEOUT)
    assert response.status_code == 409 and response.json()["error"]["code"] == "not_owner"
    refused = edge_identity(stack["monolith"], audience="reviews", auth=("user1", "wrong"))
    wrong = requests.post(f"{stack['service']}/api/reviews/", json={"product": 1, "rating": 5},
                          headers={**HOST, **refused}, timeout=REQUEST_TIMEOUT)
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "authentication_failed"



@pytest.mark.slow
def test_a_browser_session_of_the_monolith_is_recognised_and_csrf_checked(stack):
    """Through the proxy a browser sends the monolith's session and CSRF cookies to the service too."""
    browser = requests.Session()
    login_page = browser.get(f"{stack['monolith']}/accounts/login/", headers={"Host": live.SHARED_HOST},
                             timeout=REQUEST_TIMEOUT)
    token = browser.cookies["csrftoken"]
    assert "csrfmiddlewaretoken" in login_page.text
    logged_in = browser.post(f"{stack['monolith']}/accounts/login/", timeout=REQUEST_TIMEOUT, allow_redirects=False,
                             headers={"Host": live.SHARED_HOST, "Referer": f"http://{live.SHARED_HOST}/"},
                             data={"username": "user1", "password": "password", "csrfmiddlewaretoken": token})
    assert logged_in.status_code == 302 and "sessionid" in browser.cookies
    cookies = {"sessionid": browser.cookies["sessionid"], "csrftoken": browser.cookies["csrftoken"]}
    url = f"{stack['service']}/api/reviews/"
    session = edge_identity(stack["monolith"], audience="reviews", cookies={"sessionid": cookies["sessionid"]})
    forged = requests.post(url, json={"product": 1, "rating": 5}, headers={**HOST, **session}, cookies=cookies,
                           timeout=REQUEST_TIMEOUT)
    assert forged.status_code == 403 and "CSRF Failed" in forged.json()["error"]["message"]
    genuine = requests.post(url, json={"product": 1, "rating": 5}, cookies=cookies, timeout=REQUEST_TIMEOUT,
                            headers={**HOST, **session, "X-CSRFToken": cookies["csrftoken"]})
    assert genuine.status_code == 409 and genuine.json()["error"]["code"] == "not_owner"  # known, not yet owner
    expired = edge_identity(stack["monolith"], audience="reviews", cookies={"sessionid": "expired-or-forged"})
    anonymous = requests.post(url, json={"product": 1, "rating": 5}, headers={**HOST, **expired},
                              timeout=REQUEST_TIMEOUT, cookies={"sessionid": "expired-or-forged"})
    assert anonymous.status_code == 403 and anonymous.json()["error"]["code"] == "not_authenticated"


@pytest.mark.slow
def test_after_the_flip_service_writes_reach_the_monolith_and_its_product_page(stack):
    monolith, service = stack["monolith"], stack["service"]
    # each project keeps ownership in its own database: the old owner first (it stops writing), same epoch
    live.manage(live.MONOLITH_MANAGE, "sync_ownership", "--set", "review=reviews@1", env=stack["monolith_env"])
    live.manage(REVIEWS_MANAGE, "sync_ownership", "--set", "review=reviews@1", env=stack["service_env"])
    live.manage(REVIEWS_MANAGE, "reviews_id_sequences", "--headroom", "100", env=stack["service_env"])
    listed = _get(monolith, "/api/products/?page_size=100")[1]["results"]
    mine = {r["product"] for r in requests.get(f"{monolith}/api/reviews/?page_size=100", headers=HOST,
                                               auth=("admin", "admin"), timeout=REQUEST_TIMEOUT).json()["results"]
            if r["username"] == "admin"}
    product = next(p for p in listed if p["id"] not in mine)
    admin = edge_identity(monolith, audience="reviews", auth=("admin", "admin"))
    created = requests.post(f"{service}/api/reviews/", headers={**HOST, **admin}, timeout=REQUEST_TIMEOUT,
                            json={"product": product["id"], "rating": 1, "title": "Through the service"})
    assert created.status_code == 201, created.text
    assert created.json()["username"] == "admin"
    assert "published 1 event(s)" in live.manage(REVIEWS_MANAGE, "sync_relay", "--once", env=stack["service_env"])
    path = f"/api/products/{product['id']}/rating/"
    before = _get(monolith, path)
    consumer = _background(live.MONOLITH_MANAGE, "sync_consume", env=stack["monolith_env"],
                           log=stack["workdir"] / "monolith-consume.log")
    try:
        wait_until(lambda: _get(monolith, path) == _get(service, path), what="the monolith's rating to follow")
    finally:
        consumer.terminate()
        consumer.wait(timeout=REQUEST_TIMEOUT)
    assert _get(monolith, path) != before and _get(monolith, path)[1]["count"] == before[1]["count"] + 1
    on_monolith = _get(monolith, f"/api/reviews/{created.json()['id']}/")
    assert on_monolith == (200, created.json())  # same id, author, text and timestamps
    average = _get(monolith, path)[1]["average"]
    page = requests.get(f"{monolith}/p/{product['slug']}/", headers={"Host": live.SHARED_HOST},
                        timeout=REQUEST_TIMEOUT).text
    assert f"★ {average}" in page
    # the monolith refuses review writes now: the service owns them
    refused = requests.post(f"{monolith}/api/reviews/", json={"product": product["id"], "rating": 3},
                            headers=HOST, auth=("user2", "password"), timeout=REQUEST_TIMEOUT)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_owner"
    verify = subprocess.run(
        [sys.executable, str(REVIEWS_MANAGE), "sync_verify", "--aggregate", "review", "--source", service,
         "--follower", monolith], cwd=live.REPO, env=stack["service_env"], capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert " 0 difference(s)" in verify.stdout
