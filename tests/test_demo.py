"""`python3 dev.py demo` end to end: the real command in a subprocess (private var dir, ports), used via the proxy.

One demo serves the module and the tests run in file order: shop through the proxy, the catalog API served by
the catalog service, a route edit moving traffic live, a service killed during a canary (safe reads fall back,
writes get 503 JSON, nothing written), and last SIGINT, after which none of its processes may be left.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests
import yaml

from tests.verify_token import verify_headers
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.backend_independent]  # the demo runs on its own embedded default

TEST_CARD = "4242424242424242"
# The caller's real-service settings (CI's PostgreSQL pass) must not leak in: the demo runs on the embedded default.
_NOT_INHERITED = ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE", "STRANGLER_ROUTES",
                  "STRANGLER_OWNERSHIP_FILE", "STRANGLER_SYNC_NAMESPACE")


class Forms(HTMLParser):
    """Every <form> of a page: its attributes and the name -> value of its inputs (first <option> of a select)."""

    def __init__(self, html: str):
        super().__init__()
        self.forms: list[dict] = []
        self._select: str | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append({"attrs": attrs, "fields": {}})
        elif self.forms and tag in ("input", "textarea") and attrs.get("name"):
            if attrs.get("type") == "checkbox" and "checked" not in attrs:
                return
            self.forms[-1]["fields"][attrs["name"]] = attrs.get("value") or ""
        elif self.forms and tag == "select":
            self._select = attrs.get("name")
        elif self._select and tag == "option":
            self.forms[-1]["fields"].setdefault(self._select, attrs.get("value") or "")

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None

    def find(self, css_class: str | None = None) -> dict:
        for form in self.forms:
            if css_class is None or css_class in (form["attrs"].get("class") or "").split():
                return form
        raise AssertionError(f"no form with class {css_class!r} among {[f['attrs'] for f in self.forms]}")


def _ports_free(offset: int) -> bool:
    for port in (8000, 8001, 8002, 8003, 8080, 8081):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + offset))
            except OSError:
                return False
    return True


def _port_offset() -> int:
    rng = random.Random()
    for _ in range(50):
        offset = rng.randrange(12000, 24000, 100)  # ports 20000..32081: below the ephemeral range
        if _ports_free(offset):
            return offset
    raise AssertionError("no free port range for the demo")


class Demo:
    def __init__(self, var_dir: Path, plane: str = "mitmproxy", *, env: dict[str, str] | None = None):
        """``env``: settings for the demo's projects on top of the embedded default (databases, broker)."""
        self.var_dir = var_dir
        self.offset = _port_offset()
        inherited = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED and not k.endswith("_DATABASE_URL")}
        env = {**inherited, **(env or {})}
        env.update(STRANGLER_VAR_DIR=str(var_dir), PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, "dev.py", "demo", "--port-offset", str(self.offset), "--products", "200",
             "--plane", plane],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.state: dict = {}

    def _read(self) -> None:
        for line in self.process.stdout:
            self.output.append(line)

    def text(self) -> str:
        return "".join(self.output)

    def wait_ready(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while "demo: ready\n" not in self.output:
            assert self.process.poll() is None, f"the demo exited {self.process.returncode}:\n{self.text()}"
            assert time.monotonic() < deadline, f"the demo was not ready after {timeout}s:\n{self.text()}"
            time.sleep(0.2)
        self.state = json.loads((self.var_dir / "demo" / "stack.json").read_text())
        return self.state

    @property
    def proxy(self) -> str:
        return self.state["proxy"]

    def routes_edit(self, change) -> None:
        """Apply change(document) to the live route file (atomic replace, as any editor of it must), and wait
        until the proxy serves it: a probe request alone cannot tell the new table from an old one that
        answers it the same way (a GET routed alike by both, while the new table moves POSTs too)."""
        path = Path(self.state["routes_file"])
        document = yaml.safe_load(path.read_text())
        change(document)
        text = yaml.safe_dump(document, sort_keys=False)
        tmp = path.with_name(".routes.yaml.test")
        tmp.write_text(text)
        tmp.replace(path)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        wait_until(lambda: requests.get(f"{self.state['proxy_admin']}/diffs", timeout=5).json()["route_table"]["digest"]
                   == digest, what="the proxy to serve the edited route file")

    def kill_everything(self) -> None:
        """Teardown of last resort: the demo and every group it started."""
        for pid in [self.process.pid, *self.state.get("pids", {}).values()]:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.process.wait(timeout=10)


def _process_groups() -> dict[int, int]:
    """pid -> process group id of every process on the machine."""
    groups = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z":  # a zombie has exited already
                groups[int(entry.name)] = int(fields[2])
    return groups


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    started = Demo(tmp_path_factory.mktemp("demo-var"))
    try:
        started.wait_ready(timeout=120)
        yield started
    finally:
        if started.process.poll() is None:
            started.kill_everything()


def test_starts_every_project_relay_consumer_and_the_proxy(demo):
    pids = demo.state["pids"]
    projects = list(demo.state["projects"])
    assert projects[:2] == ["monolith", "catalog"]
    for name in projects:
        assert {name, f"{name}-relay", f"{name}-consumer"} <= set(pids)
    assert "proxy" in pids
    for name, url in demo.state["projects"].items():
        assert requests.get(f"{url}/readyz", timeout=5).json() == {"status": "ready"}, name
    # the first copy reached the catalog service: same products on both sides
    counts = [_checksums(demo.state['projects'][n]).json()["count"]
              for n in ("monolith", "catalog")]
    assert counts[0] == counts[1] > 0
    assert f"shop (through the proxy):  {demo.proxy}/" in demo.text()
    # the monolith reconciles the catalog's copy continuously: its first pass finds both sides equal
    assert "catalog-reconcile" in pids
    reconcile_url = f"{demo.state['projects']['monolith']}/sync/reconcile/"

    def statuses() -> set:
        return {(p["aggregate"], p["status"]) for p in requests.get(reconcile_url, timeout=10).json()["passes"]}

    wait_until(lambda: statuses() == {("category", "clean"), ("product", "clean")}, timeout=150, interval=0.5,
               what=lambda: f"clean reconcile passes of category and product (last: {statuses()})")


def test_shop_through_the_proxy(demo):
    shopper = requests.Session()
    home = shopper.get(f"{demo.proxy}/", timeout=10)
    assert home.status_code == 200 and home.headers["X-Strangler-Upstream"] == "monolith"

    login_page = shopper.get(f"{demo.proxy}/accounts/login/", timeout=10)
    login = Forms(login_page.text).find("form-box")["fields"]
    answer = shopper.post(f"{demo.proxy}/accounts/login/", timeout=10,
                          data={**login, "username": "user1", "password": "password"})
    assert answer.status_code == 200 and "user1" in answer.text

    links = re.findall(r'<a class="name" href="(/p/[^"]+/)">', shopper.get(f"{demo.proxy}/", timeout=10).text)
    assert links
    for link in links:
        product_page = shopper.get(f"{demo.proxy}{link}", timeout=10).text
        if "In stock:" in product_page:
            break
    else:
        raise AssertionError("no product in stock on the first page")
    name = re.search(r"<h1>([^<]+)</h1>", product_page).group(1)
    add = Forms(product_page).find("add-to-cart")
    cart = shopper.post(f"{demo.proxy}{add['attrs']['action']}", data={**add["fields"], "quantity": "2"},
                        timeout=10)
    assert cart.status_code == 200 and name in cart.text

    checkout_page = shopper.get(f"{demo.proxy}/orders/checkout/", timeout=10)
    assert checkout_page.status_code == 200 and name in checkout_page.text
    fields = Forms(checkout_page.text).find("form-box")["fields"]
    fields.update(address="", name="Ada Shopper", line1="1 Proxy Road", city="Fig", postal_code="12345",
                  country="US", card_number=TEST_CARD)
    order_page = shopper.post(f"{demo.proxy}/orders/checkout/", data=fields, timeout=30)
    assert order_page.status_code == 200, order_page.text[-2000:]
    assert re.search(r'data-testid="order-status">Paid<', order_page.text)
    reference = re.search(r"/orders/([^/]+)/$", order_page.url).group(1)
    assert order_page.headers["X-Strangler-Upstream"] == "monolith"

    orders = shopper.get(f"{demo.proxy}/orders/", timeout=10)
    assert reference in orders.text
    mine = shopper.get(f"{demo.proxy}/api/orders/", timeout=10).json()
    assert [o["status"] for o in mine["results"] if o["reference"] == reference] == ["paid"]


def test_catalog_api_is_served_by_the_catalog_service(demo):
    through_proxy = requests.get(f"{demo.proxy}/api/products/?ordering=price", timeout=10)
    assert through_proxy.status_code == 200
    assert through_proxy.headers["X-Strangler-Upstream"] == "catalog"
    assert through_proxy.headers["X-Strangler-Route"] == "/api/products/"
    monolith = requests.get(f"{demo.state['projects']['monolith']}/api/products/?ordering=price", timeout=10)
    assert through_proxy.json()["results"] == monolith.json()["results"]
    # the rating inside /api/products/ belongs to the reviews app: a pattern route keeps it off the catalog
    product_id = through_proxy.json()["results"][0]["id"]
    rating = requests.get(f"{demo.proxy}/api/products/{product_id}/rating/", timeout=10)
    assert rating.status_code == 200 and rating.headers["X-Strangler-Upstream"] == "monolith"
    categories = requests.get(f"{demo.proxy}/api/categories/", timeout=10)
    assert categories.headers["X-Strangler-Upstream"] == "catalog"
    # writes still go to the owner, the monolith (anonymous: refused by it, not by the follower's not_owner)
    write = requests.post(f"{demo.proxy}/api/products/", json={}, timeout=10)
    assert write.headers["X-Strangler-Upstream"] == "monolith" and write.status_code == 403


def _set_products_route(**fields):
    def change(document):
        route = next(r for r in document["routes"] if r.get("prefix") == "/api/products/")
        for key, value in fields.items():
            if value is None:
                route.pop(key, None)
            else:
                route[key] = value
    return change


def _upstream(url: str) -> str:
    return requests.get(url, timeout=10).headers["X-Strangler-Upstream"]


def test_route_edit_moves_traffic_live(demo):
    url = f"{demo.proxy}/api/products/"
    demo.routes_edit(_set_products_route(mode="monolith"))
    wait_until(lambda: _upstream(url) == "monolith", what="the proxy to send /api/products/ to the monolith")
    demo.routes_edit(_set_products_route(mode="service"))
    wait_until(lambda: _upstream(url) == "catalog", what="the proxy to send /api/products/ to catalog")


def _catalog_skus(var_dir: Path) -> list[str]:
    with sqlite3.connect(var_dir / "catalog.sqlite3") as db:
        return [row[0] for row in db.execute("SELECT sku FROM catalog_service_product")]


def test_service_down_during_canary(demo):
    """The catalog service dies during a 100% canary taking every method: reads fall back, writes get 503 JSON."""
    monolith = demo.state["projects"]["monolith"]
    demo.routes_edit(_set_products_route(mode="canary", weight=100, methods=None, fallback=True))
    url = f"{demo.proxy}/api/products/"
    wait_until(lambda: (r := requests.get(url, timeout=10)).headers["X-Strangler-Upstream"] == "catalog"
               and r.headers["X-Strangler-Route"] == "/api/products/", what="the canary route")
    products_before = _checksums(monolith).json()
    skus_before = _catalog_skus(demo.var_dir)

    os.killpg(demo.state["pids"]["catalog"], signal.SIGKILL)
    wait_until(lambda: "demo: catalog exited" in demo.text(), what="the demo to report the dead service")

    read = requests.get(f"{url}?ordering=price", timeout=15)
    assert read.status_code == 200
    assert read.headers["X-Strangler-Upstream"] == "monolith"
    assert read.headers["X-Strangler-Fallback"].startswith("catalog:")
    assert read.json()["results"] == requests.get(f"{monolith}/api/products/?ordering=price", timeout=10).json()[
        "results"]

    new_product = {"sku": "DEMO-FAULT-1", "slug": "demo-fault-1", "name": "Never written", "price": "9.99",
                   "currency": "USD", "is_active": True}
    for _ in range(7):  # past the breaker's threshold too: refused by the failing call, then by the open breaker
        write = requests.post(url, json=new_product, auth=("admin", "admin"), timeout=15)
        assert write.status_code == 503
        assert write.headers["Content-Type"].startswith("application/json")
        assert write.headers["Retry-After"]
        error = write.json()["error"]
        assert error["code"] == "upstream_unavailable"
        assert error["details"]["upstream"] == "catalog" and error["message"]
    breaker_states = requests.get(f"{demo.state['proxy_admin']}/diffs", timeout=5).json()
    assert "catalog" in json.dumps(breaker_states)

    # nothing half-written: not in the monolith (nor its outbox), not in the service's database
    assert _checksums(monolith).json() == products_before
    assert requests.get(f"{monolith}/api/products/", params={"q": "Never written"}, timeout=10).json()["count"] == 0
    assert _catalog_skus(demo.var_dir) == skus_before and "DEMO-FAULT-1" not in skus_before
    # the rest of the stack keeps serving
    assert requests.get(f"{demo.proxy}/", timeout=10).status_code == 200


def test_a_crashed_consumer_is_restarted(demo):
    old_pid = demo.state["pids"]["monolith-consumer"]
    os.killpg(old_pid, signal.SIGKILL)
    wait_until(lambda: "demo: monolith-consumer exited with code -9; restarted" in demo.text(),
               what="the restart")
    state = wait_until(lambda: (s := json.loads(Path(demo.state["routes_file"]).with_name("stack.json").read_text()))
                       ["pids"]["monolith-consumer"] != old_pid and s, what="the new pid in stack.json")
    new_pid = state["pids"]["monolith-consumer"]
    assert _process_groups().get(new_pid) == new_pid
    demo.state = state


def test_sigint_stops_every_process(demo):
    demo.state = json.loads((demo.var_dir / "demo" / "stack.json").read_text())
    leaders = set(demo.state["pids"].values())
    groups = _process_groups()
    members = {pid for pid, group in groups.items() if group in leaders}
    assert len(members) > len(leaders) - 1  # mitmdump runs in the proxy's group; the killed catalog is gone
    started = time.monotonic()
    demo.process.send_signal(signal.SIGINT)
    assert demo.process.wait(timeout=30) == 0
    elapsed = time.monotonic() - started
    left = {pid: group for pid, group in _process_groups().items() if group in leaders or pid in members}
    assert left == {}, f"processes left after SIGINT: {left}"
    assert "demo: stopping" in demo.text()
    assert not (demo.var_dir / "demo" / "stack.json").exists()
    assert elapsed < 15


def _checksums(base_url: str) -> requests.Response:
    return requests.get(f"{base_url}/sync/checksums/product/", headers=verify_headers(), timeout=5)
