"""Identity at the edge, conformance: one table of requests with every kind of credentials, sent to the monolith
directly and through both planes to the catalog service (the moved path), must get the same status and body.

Real processes: the monolith (seeded; one product inactive, which only staff see), the catalog service on a copy of
its data, the nginx plane (with its diff endpoint) and the mitmproxy plane (`strangler-proxy run`), both with
``settings.identity`` naming the catalog. Shadow copies to the catalog carry the caller's signed identity, so an
authenticated read compares like with like. Then the identity endpoint goes missing: credentials get 503 (or, on
a fallback route, the monolith), never the service without an identity.

Once on the embedded default (SQLite files) and once on throwaway PostgreSQL databases when the run's
DATABASE_URL is PostgreSQL (sessions, users and tokens are read from the monolith's database on every lookup).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json

import pytest

from strangler_proxy.diff_endpoint import DiffEndpoint
from strangler_proxy.loader import load_route_file
from tests.extracted.catalog import live
from tests.identity import identity_token
from tests.strangler_proxy.planes import both_planes
from tests.strangler_proxy.upstreams import free_port
from tests.throwaway_databases import throwaway_databases
from tests.waiting import REQUEST_TIMEOUT, wait_until

pytestmark = [pytest.mark.nginx, pytest.mark.slow, pytest.mark.timeout(900)]  # four processes set up on a busy box

ROUTES = """\
upstreams:
  monolith: {monolith}
  catalog: {catalog}
monolith: monolith
settings:
  diff_endpoint: 127.0.0.1:{diff_port}
  identity:
    upstreams: [catalog]
    endpoint: {endpoint}
    timeout: 60  # a password check (PBKDF2) on a busy CI box
routes:
  - prefix: /api/products/{hidden}/  # the inactive product: staff get it, anyone else 404
    mode: shadow
    service: catalog
  - prefix: /api/products/
    mode: service
    service: catalog
  - prefix: /api/categories/
    mode: service
    service: catalog
    fallback: true
"""
SETUP = """
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from rest_framework.authtoken.models import Token
from monolith.catalog.models import Product
hidden = Product.objects.order_by("pk").values_list("pk", flat=True).first()
Product.objects.filter(pk=hidden).update(is_active=False)
User = get_user_model()
User.objects.create_user("sleeper", password="password", is_active=False)
user = User.objects.get(username="user1")
session = SessionStore()
session.update({SESSION_KEY: str(user.pk), BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
                HASH_SESSION_KEY: user.get_session_auth_hash()})
session.create()
print(hidden, session.session_key, Token.objects.create(user=User.objects.get(username="admin")).key)
"""
PATH = "/api/products/?page_size=100"


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def rows(session: str, token: str) -> dict[str, dict[str, str]]:
    forged = identity_token(audience="catalog", user_id=1, username="admin", is_staff=True)
    return {
        "anonymous": {},
        "session": {"Cookie": f"sessionid={session}"},
        "basic staff": {"Authorization": basic("admin", "admin")},
        "basic customer": {"Authorization": basic("user1", "password")},
        "token": {"Authorization": f"Token {token}"},
        "bad password": {"Authorization": basic("user1", "wrong")},
        "inactive user": {"Authorization": basic("sleeper", "password")},
        "expired session": {"Cookie": "sessionid=expired-or-forged"},
        # signed with the real key, for staff: stripped by the proxy, so anonymous (or the real caller)
        "forged identity": {"X-Strangler-Identity": forged},
        "forged identity + customer": {"X-Strangler-Identity": forged, "Authorization": basic("user1", "password")},
    }


@pytest.fixture(scope="module", params=[
    pytest.param("embedded", marks=pytest.mark.backend_independent),  # SQLite files, whatever the run's database
    pytest.param("postgres", marks=pytest.mark.postgres)])
def stack(request, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("identity")
    quiet = {"STRANGLER_SYNC_RELAY_TRIGGER": "none", "SECRET_KEY": "identity-" + "k" * 40}
    with contextlib.ExitStack() as resources:
        if request.param == "postgres":
            databases, _tag = resources.enter_context(throwaway_databases(
                "identity", {"DATABASE_URL": "monolith", "CATALOG_DATABASE_URL": "catalog"}))
        else:
            databases = {"DATABASE_URL": f"sqlite:///{workdir / 'monolith.sqlite3'}",
                         "CATALOG_DATABASE_URL": f"sqlite:///{workdir / 'catalog.sqlite3'}"}
        monolith_env = live.project_env(workdir=workdir, DATABASE_URL=databases["DATABASE_URL"], **quiet)
        service_env = live.project_env(workdir=workdir, CATALOG_DATABASE_URL=databases["CATALOG_DATABASE_URL"],
                                       **quiet)
        live.manage(live.MONOLITH_MANAGE, "migrate", "--noinput", "-v", "0", env=monolith_env)
        live.manage(live.MONOLITH_MANAGE, "seed_storefront", "--products", "12", "--users", "1", "--seed", "3",
                    "--no-progress", env=monolith_env)
        hidden, session, token = live.manage(live.MONOLITH_MANAGE, "shell", "-c", SETUP, env=monolith_env).split()[-3:]
        dump = workdir / "catalog-dump.json"
        live.manage(live.MONOLITH_MANAGE, "dumpdata", "catalog.category", "catalog.product", "--output", str(dump),
                    env=monolith_env)
        live.manage(live.CATALOG_MANAGE, "migrate", "--noinput", "-v", "0", env=service_env)
        live.manage(live.CATALOG_MANAGE, "catalog_import", str(dump), env=service_env)
        monolith = live.LiveServer(live.MONOLITH_MANAGE, env=monolith_env, log=workdir / "monolith.log")
        resources.callback(monolith.stop)
        catalog = live.LiveServer(live.CATALOG_MANAGE, env=service_env, log=workdir / "catalog.log")
        resources.callback(catalog.stop)
        monolith.wait_ready()
        catalog.wait_ready()
        route_file = workdir / "routes.yaml"
        fields = {"monolith": monolith.url, "catalog": catalog.url, "diff_port": free_port(), "hidden": hidden}
        route_file.write_text(ROUTES.format(**fields, endpoint="/sync/identity/"))
        diff_endpoint = DiffEndpoint(table=load_route_file(route_file), port=fields["diff_port"]).start()
        resources.callback(diff_endpoint.stop)
        planes = resources.enter_context(both_planes(route_file, workdir, admin=True, require_mitmproxy=True))
        yield {"monolith": monolith, "planes": planes, "fields": fields, "rows": rows(session, token),
               "hidden": hidden, "diff_endpoint": diff_endpoint}


def send(port: int, method: str, path: str, headers: dict[str, str], body: bytes | None = None):
    """One request on its own connection; generous timeout: a password check (PBKDF2) on a busy CI box."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    try:
        connection.request(method, path, body=body, headers={"Host": "localhost", **headers})
        response = connection.getresponse()
        return response.status, json.loads(response.read()), response.getheader("X-Strangler-Upstream")
    finally:
        connection.close()


def answer(port: int, headers: dict[str, str], path: str = PATH):
    return send(port, "GET", path, headers)


def test_every_kind_of_credentials_gets_the_monolith_s_answer_from_the_service_on_both_planes(stack):
    monolith_port = stack["monolith"].port
    expected = {name: answer(monolith_port, headers)[:2] for name, headers in stack["rows"].items()}
    # the table can fail: identity matters on this path (staff see the inactive product) and refusals are refusals
    assert expected["basic staff"][1]["count"] == expected["anonymous"][1]["count"] + 1
    assert expected["token"] == expected["basic staff"]
    assert expected["session"] == expected["basic customer"] == expected["anonymous"]
    assert expected["bad password"][0] == expected["inactive user"][0] == 403
    assert expected["bad password"][1]["error"]["code"] == "authentication_failed"
    mismatches = []
    for plane, port in stack["planes"].ports.items():
        for name, headers in stack["rows"].items():
            status, body, upstream = answer(port, headers)
            if upstream != "catalog" or (status, body) != expected[name]:
                mismatches.append(f"{plane} {name}: {upstream} {status} {json.dumps(body)[:300]}\n"
                                  f"    monolith: {expected[name][0]} {json.dumps(expected[name][1])[:300]}")
    assert not mismatches, "\n".join(mismatches)


def test_writes_are_refused_alike_for_customers_and_anonymous(stack):
    body = json.dumps({"sku": "X-1", "name": "x", "slug": "x-1", "price": "1.00"}).encode()
    for name in ("anonymous", "basic customer", "bad password"):
        headers = {**stack["rows"][name], "Content-Type": "application/json"}
        direct = send(stack["monolith"].port, "POST", "/api/products/", headers, body)[:2]
        for plane, port in stack["planes"].ports.items():
            assert send(port, "POST", "/api/products/", headers, body)[:2] == direct, (plane, name)


def shadow_summaries(stack) -> dict[str, dict]:
    """Each plane's diff summary of the shadowed route (nginx: its diff endpoint; mitmproxy: its /diffs)."""
    admin = http.client.HTTPConnection("127.0.0.1", stack["planes"].admin_port, timeout=REQUEST_TIMEOUT)
    try:
        admin.request("GET", "/diffs")
        mitmproxy = json.loads(admin.getresponse().read())
    finally:
        admin.close()
    label = f"/api/products/{stack['hidden']}/"
    empty = {"comparisons": 0, "diffs": 0, "errors": 0}
    return {plane: summary["routes"].get(label, empty)
            for plane, summary in (("nginx", stack["diff_endpoint"].summary()), ("mitmproxy", mitmproxy))}


def test_shadow_copies_carry_the_caller_s_signed_identity_on_both_planes(stack):
    """Staff see the inactive product on the monolith, a customer does not: a copy to the catalog without the
    staff identity (or with the client's forged one) would differ. Two reads per plane, no difference."""
    path = f"/api/products/{stack['hidden']}/"
    staff, forging = stack["rows"]["basic staff"], stack["rows"]["forged identity + customer"]
    monolith_port = stack["monolith"].port
    assert answer(monolith_port, staff, path)[0] == 200 and answer(monolith_port, forging, path)[0] == 404
    for plane, port in stack["planes"].ports.items():
        assert answer(port, staff, path)[::2] == (200, "monolith"), plane
        assert answer(port, forging, path)[::2] == (404, "monolith"), plane

    def done() -> dict | None:
        found = shadow_summaries(stack)
        return found if all(s["comparisons"] + s["errors"] >= 2 for s in found.values()) else None

    summaries = wait_until(done, what=lambda: f"two shadow comparisons per plane: {shadow_summaries(stack)}")
    for plane, summary in summaries.items():
        assert (summary["comparisons"], summary["diffs"], summary["errors"]) == (2, 0, 0), (plane, summary)


def test_without_the_identity_endpoint_credentials_are_never_forwarded(stack):
    """Last in the module: the route file's endpoint is made to answer 404 on both planes."""
    planes = stack["planes"]
    planes.route_file.write_text(ROUTES.format(**stack["fields"], endpoint="/sync/identity-gone/"))
    planes.nginx.reload(load_route_file(planes.route_file))
    credentials = stack["rows"]["basic staff"]
    for plane, port in planes.ports.items():
        # mitmproxy reloads the file itself (every 0.25 s)
        wait_until(lambda port=port: answer(port, credentials)[0] == 503, what=f"{plane} to refuse (503)")
        status, body, upstream = answer(port, credentials)
        assert (status, body["error"]["code"]) == (503, "identity_unavailable") and upstream != "catalog", plane
        assert answer(port, {})[0] == 200  # no credentials: nothing to resolve, the service answers
        # a fallback route: the monolith answers (it checks the credentials itself), never the service
        status, _, upstream = answer(port, credentials, path="/api/categories/")
        assert (status, upstream) == (200, "monolith"), plane
