"""Read-your-writes through the running demo (monolith, catalog, relay, consumer, mitmproxy plane): the issue's
experiment. 100 times a client PATCHes a product through the proxy (the monolith owns it and answers) and at once
GETs it through the proxy (a route serving reads from the catalog service): with the feature on no read is stale,
at canary 100 % and 50 %. With the follower's consumer stopped (a lag that does not depend on the machine's
speed) every read goes to the monolith with the feature on, and every read is stale with it off (so this test
can fail). Once on the embedded default, once on PostgreSQL + RabbitMQ."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from tests.demo_setups import DEMO_SETUPS, demo_running
from tests.test_demo import Demo, _set_products_route
from tests.waiting import REQUEST_TIMEOUT, wait_until

pytestmark = pytest.mark.slow

ROUNDS = 100
READS_ONLY = ["GET", "HEAD", "OPTIONS"]


@pytest.fixture(scope="module", params=DEMO_SETUPS)
def demo(request, tmp_path_factory):
    with demo_running(request.param, tmp_path_factory.mktemp("ryw-demo-var"), prefix="ryw") as started:
        yield started


@pytest.fixture(scope="module")
def staff(demo) -> dict:
    """A session of the demo's superuser (admin/admin), logged in once at the monolith: HTTP Basic would hash the
    password (PBKDF2) on every write, seconds per round on a busy box. The catalog ignores the session cookie."""
    monolith = demo.state["projects"]["monolith"]
    login = requests.Session()
    login.get(f"{monolith}/admin/login/", timeout=REQUEST_TIMEOUT)
    answer = login.post(f"{monolith}/admin/login/", timeout=REQUEST_TIMEOUT, allow_redirects=False, data={
        "username": "admin", "password": "admin", "csrfmiddlewaretoken": login.cookies["csrftoken"],
        "next": "/admin/"})
    assert answer.status_code == 302 and "sessionid" in login.cookies, answer.text[:500]
    return {"sessionid": login.cookies["sessionid"], "csrftoken": login.cookies["csrftoken"]}


def client_of(staff: dict) -> requests.Session:
    """A new client (no sticky id yet: canary 50 % splits them) holding the staff session."""
    client = requests.Session()
    client.cookies.update(staff)
    client.headers["X-CSRFToken"] = staff["csrftoken"]
    return client


def experiment(demo: Demo, staff: dict, product_id: int, *, start: int) -> dict:
    """ROUNDS write-then-read pairs through the proxy, each from a new client."""
    url = f"{demo.proxy}/api/products/{product_id}/"
    stale, served_by = 0, {}
    for i in range(ROUNDS):
        client = client_of(staff)
        price = f"{start + i}.25"
        write = client.patch(url, json={"price": price}, timeout=REQUEST_TIMEOUT)
        assert write.status_code == 200, write.text
        assert write.headers["X-Strangler-Upstream"] == "monolith"
        assert "X-Strangler-Written" not in write.headers  # the proxy keeps the positions to itself
        read = client.get(url, timeout=REQUEST_TIMEOUT)
        assert read.status_code == 200, read.text
        served_by[read.headers["X-Strangler-Upstream"]] = served_by.get(read.headers["X-Strangler-Upstream"], 0) + 1
        if Decimal(read.json()["price"]) != Decimal(price):
            stale += 1
    return {"stale": stale, "served_by": served_by}


def route(demo: Demo, **fields) -> None:
    demo.routes_edit(_set_products_route(methods=READS_ONLY, fallback=True, **fields))


@pytest.fixture(scope="module")
def product_id(demo) -> int:
    listing = requests.get(f"{demo.proxy}/api/products/", timeout=REQUEST_TIMEOUT).json()
    return listing["results"][0]["id"]


@pytest.mark.parametrize("weight", [100, 50])
def test_no_stale_read_after_a_write_with_the_feature_on(demo, staff, product_id, weight):
    route(demo, mode="canary", weight=weight, read_your_writes=None)  # on by default: reads only, writes elsewhere
    result = experiment(demo, staff, product_id, start=1000 + weight)
    assert result["stale"] == 0, result
    if weight == 50:  # both sides served reads: the monolith for half the clients
        assert result["served_by"].get("monolith", 0) > 0, result


def sqlite_unlocked(path: Path) -> bool:
    """Whether no connection holds any lock on the SQLite file (BEGIN EXCLUSIVE gets through at once)."""
    if not path.exists():
        return True  # not on SQLite (the PostgreSQL + RabbitMQ run): a stopped process blocks no reader there
    db = sqlite3.connect(path, timeout=0.2, isolation_level=None)
    try:
        db.execute("BEGIN EXCLUSIVE")
        db.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        db.close()


@contextlib.contextmanager
def catalog_consumer_paused(demo: Demo):
    """The follower lags for as long as the block runs (its consumer stopped): how far behind it is no longer
    depends on the machine's speed (on a busy box the consumer may apply a write before the read arrives).
    Stopped only at a moment it holds no lock on the SQLite files others use (the broker, the catalog's)."""
    group = demo.state["pids"]["catalog-consumer"]
    files = [demo.var_dir / "broker.sqlite3", demo.var_dir / "catalog.sqlite3"]

    def stopped_idle() -> bool:
        os.killpg(group, signal.SIGSTOP)
        if all(sqlite_unlocked(path) for path in files):
            return True
        os.killpg(group, signal.SIGCONT)
        return False

    wait_until(stopped_idle, what="the catalog consumer stopped between two transactions")
    try:
        yield
    finally:
        os.killpg(group, signal.SIGCONT)


def test_while_the_follower_lags_the_writer_serves_the_reads(demo, staff, product_id):
    route(demo, mode="canary", weight=100, read_your_writes=None)
    with catalog_consumer_paused(demo):
        result = experiment(demo, staff, product_id, start=2000)
    assert result == {"stale": 0, "served_by": {"monolith": ROUNDS}}


def test_the_same_experiment_with_the_feature_off_shows_stale_reads(demo, staff, product_id):
    route(demo, mode="canary", weight=100, read_your_writes=False)
    with catalog_consumer_paused(demo):
        result = experiment(demo, staff, product_id, start=3000)
    assert result == {"stale": ROUNDS, "served_by": {"catalog": ROUNDS}}


def test_the_follower_serves_the_client_again_once_it_has_the_write(demo, staff, product_id):
    route(demo, mode="service", weight=None, read_your_writes=None)
    url = f"{demo.proxy}/api/products/{product_id}/"
    client = client_of(staff)
    assert client.patch(url, json={"price": "4242.50"}, timeout=REQUEST_TIMEOUT).status_code == 200
    assert "strangler_ryw" in client.cookies  # signed positions, kept by the client

    def from_catalog():
        read = client.get(url, timeout=REQUEST_TIMEOUT)
        assert Decimal(read.json()["price"]) == Decimal("4242.50"), read.headers  # never stale meanwhile
        return read.headers["X-Strangler-Upstream"] == "catalog"

    wait_until(from_catalog, what="the catalog to serve the client's read once it applied the write")
    assert "strangler_ryw" not in client.cookies  # the follower said ok: nothing left to check
    forged = requests.get(url, cookies={"strangler_ryw": "W1siY2F0YWxvZyIsOTk5OTk5OTk5OSwiIl1d.AAAA"},
                          timeout=REQUEST_TIMEOUT)
    assert forged.headers["X-Strangler-Upstream"] == "catalog"  # an unsigned cookie routes nothing
