"""The whole inventory extraction through the real data plane, with real processes and their own databases.

On the default filesystem transport and on RabbitMQ (private namespace). Before the flip the service
follows: the monolith backfills products and stock to the service's consumer, and a stock change in the
monolith arrives too. After the flip the service is the writer: reservations made through its API reach
the monolith's stock levels through its relay and the monolith's consumer, and
`sync_verify --aggregate stock` finds 0 differences.
"""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
import requests
from kombu import Connection

from tests.extracted.catalog import live
from tests.waiting import REQUEST_TIMEOUT, wait_until

INVENTORY_MANAGE = live.REPO / "extracted" / "inventory" / "manage.py"
TOKEN = "flip-inventory-token-0123456789"
HOST = {"Host": live.SHARED_HOST, "Accept": "application/json"}


def _background(script, *args: str, env: dict, log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(script), *args], cwd=live.REPO, env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)


def _stock(base: str, product_id: int) -> dict:
    return requests.get(f"{base}/api/stock/{product_id}/", headers=HOST, timeout=REQUEST_TIMEOUT).json()


@pytest.fixture(params=["filesystem", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def broker_env(request):
    """The default transport (private folders under the test's var dir), or RabbitMQ under a private namespace."""
    if request.param == "filesystem":
        yield {}
        return
    url = request.getfixturevalue("rabbitmq_url")
    namespace = f"test-inventory-{uuid.uuid4().hex[:8]}"
    yield {"CELERY_BROKER_URL": url, "STRANGLER_SYNC_NAMESPACE": namespace}
    with Connection(url) as connection:  # leave nothing behind on the shared broker
        channel = connection.channel()
        for queue in ("monolith", "catalog", "inventory", "reviews"):
            channel.queue_delete(f"{namespace}.sync.{queue}")
            channel.queue_delete(f"{namespace}.sync.{queue}.dlq")
        channel.exchange_delete(f"{namespace}.strangler.events")


@pytest.mark.slow
def test_follow_then_flip_then_lead(tmp_path, broker_env):
    common = {"STRANGLER_SYNC_RELAY_TRIGGER": "none", "STRANGLER_OWNERSHIP_FILE": str(tmp_path / "ownership.json"),
              **broker_env}
    monolith_env = live.project_env(workdir=tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'm.sqlite3'}", **common)
    service_env = live.project_env(workdir=tmp_path, INVENTORY_DATABASE_URL=f"sqlite:///{tmp_path / 'i.sqlite3'}",
                                   INVENTORY_API_TOKENS=TOKEN, **common)
    live.manage(live.MONOLITH_MANAGE, "migrate", "--noinput", "-v", "0", env=monolith_env)
    live.manage(live.MONOLITH_MANAGE, "seed_storefront", "--products", "30", "--users", "1", "--seed", "9",
                env=monolith_env)
    live.manage(INVENTORY_MANAGE, "migrate", "--noinput", "-v", "0", env=service_env)
    servers = [live.LiveServer(live.MONOLITH_MANAGE, env=monolith_env, log=tmp_path / "monolith.log"),
               live.LiveServer(INVENTORY_MANAGE, env=service_env, log=tmp_path / "inventory.log")]
    consumers = [_background(INVENTORY_MANAGE, "sync_consume", env=service_env, log=tmp_path / "i-consume.log")]
    try:
        for server in servers:
            server.wait_ready()
        monolith, service = servers[0].url, servers[1].url
        # follow: the first copy, then a live change made in the monolith (staff API) and relayed
        for aggregate in ("product", "stock"):
            live.manage(live.MONOLITH_MANAGE, "sync_backfill", "--aggregate", aggregate, "--direct",
                        "--no-progress", env=monolith_env)
        # the seed's products were captured by triggers into the outbox (the backfill went direct): out first
        live.manage(live.MONOLITH_MANAGE, "sync_relay", "--once", env=monolith_env)
        changed = requests.put(f"{monolith}/api/stock/3/", json={"quantity_on_hand": 77}, headers=HOST,
                               auth=("admin", "admin"), timeout=REQUEST_TIMEOUT)
        assert changed.status_code == 200, changed.text
        assert "published 1 event(s)" in live.manage(live.MONOLITH_MANAGE, "sync_relay", "--once", env=monolith_env)
        wait_until(lambda: _stock(service, 3) == _stock(monolith, 3) == changed.json(),
                  what="the monolith's stock change on the service")
        refused = requests.post(f"{service}/api/reservations/", headers={**HOST, "Authorization": f"Bearer {TOKEN}"},
                                json={"reference": "EARLY", "lines": [{"product": 3, "quantity": 1}]},
                                timeout=REQUEST_TIMEOUT)
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_owner"

        # the flip (no checkout in flight), then the service leads and the monolith follows
        # each project keeps ownership in its own database: the old owner first (it stops writing), same epoch
        live.manage(live.MONOLITH_MANAGE, "sync_ownership", "--set", "stock=inventory@1", env=monolith_env)
        live.manage(INVENTORY_MANAGE, "sync_ownership", "--set", "stock=inventory@1", env=service_env)
        consumers.append(_background(live.MONOLITH_MANAGE, "sync_consume", env=monolith_env,
                                     log=tmp_path / "m-consume.log"))
        auth = {**HOST, "Authorization": f"Bearer {TOKEN}"}
        reserved = requests.post(f"{service}/api/reservations/", headers=auth, timeout=REQUEST_TIMEOUT, json={
            "reference": "ORD-FLIP1", "lines": [{"product": 3, "quantity": 5}, {"product": 1, "quantity": 1}]})
        assert reserved.status_code == 201, reserved.text
        assert requests.post(f"{service}/api/reservations/ORD-FLIP1/confirm/", headers=auth,
                             timeout=REQUEST_TIMEOUT).status_code == 200
        monolith_refuses = requests.put(f"{monolith}/api/stock/3/", json={"quantity_on_hand": 1}, headers=HOST,
                                        auth=("admin", "admin"), timeout=REQUEST_TIMEOUT)
        assert monolith_refuses.status_code == 409 and monolith_refuses.json()["error"]["code"] == "not_owner"
        assert "published 4 event(s)" in live.manage(INVENTORY_MANAGE, "sync_relay", "--once", env=service_env)
        wait_until(lambda: _stock(monolith, 3) == _stock(service, 3), what="the monolith to follow the service")
        assert _stock(monolith, 3)["quantity_on_hand"] == 72
        page = requests.get(f"{monolith}/api/stock/?product=1,3", headers=HOST, timeout=REQUEST_TIMEOUT).json()
        assert page == requests.get(f"{service}/api/stock/?product=1,3", headers=HOST, timeout=REQUEST_TIMEOUT).json()
        verify = subprocess.run(
            [sys.executable, str(INVENTORY_MANAGE), "sync_verify", "--aggregate", "stock", "--source", service,
             "--follower", monolith], cwd=live.REPO, env=service_env, capture_output=True, text=True, timeout=60)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert " 0 difference(s)" in verify.stdout
    finally:
        for consumer in consumers:
            consumer.terminate()
            consumer.wait(timeout=REQUEST_TIMEOUT)
        for server in servers:
            server.stop()
