"""After the flip the service is the writer: its API writes reach the monolith through the real data plane.

Real processes: the catalog service (live server + `sync_relay`) and the monolith (live server +
`sync_consume`), each with its own SQLite database, on the default filesystem transport (private var dir)
and on RabbitMQ (private namespace).
"""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
import requests
from kombu import Connection

from tests.extracted.catalog import live
from tests.waiting import wait_until

TOKEN = "flip-test-token"
HTTP_TIMEOUT = 30  # generous: CI runs this next to other suites on two shared cores
INBOX_COUNT = (
    "from strangler_sync.models import InboxMessage; "
    "print(InboxMessage.objects.filter(origin='catalog', outcome='applied').count())"
)


@pytest.fixture(params=["filesystem", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def broker_env(request):
    """The default transport (private folders under the test's var dir), or RabbitMQ under a private namespace."""
    if request.param == "filesystem":
        yield {}
        return
    url = request.getfixturevalue("rabbitmq_url")
    namespace = f"test-flip-{uuid.uuid4().hex[:8]}"
    yield {"CELERY_BROKER_URL": url, "STRANGLER_SYNC_NAMESPACE": namespace}
    with Connection(url) as connection:  # leave nothing behind on the shared broker
        channel = connection.channel()
        # every subscriber queue the catalog's relay declares (its STRANGLER_SYNC["SUBSCRIBERS"]) and our own
        for project in ("monolith", "catalog", "inventory", "reviews"):
            for queue in (f"sync.{project}", f"sync.{project}.dlq"):
                channel.queue_delete(f"{namespace}.{queue}")
        channel.exchange_delete(f"{namespace}.strangler.events")


@pytest.mark.slow
def test_service_owned_writes_reach_the_monolith(tmp_path, broker_env):
    common = {"STRANGLER_SYNC_RELAY_TRIGGER": "none", "CATALOG_API_TOKENS": TOKEN, **broker_env}
    monolith_env = live.project_env(workdir=tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'm.sqlite3'}", **common)
    service_env = live.project_env(workdir=tmp_path, CATALOG_DATABASE_URL=f"sqlite:///{tmp_path / 'c.sqlite3'}",
                                   **common)
    dump = tmp_path / "dump.json"
    live.manage(live.MONOLITH_MANAGE, "migrate", "--noinput", "-v", "0", env=monolith_env)
    live.manage(live.MONOLITH_MANAGE, "seed_storefront", "--products", "30", "--users", "1", "--seed", "5",
                env=monolith_env)
    live.manage(live.MONOLITH_MANAGE, "dumpdata", "catalog.category", "catalog.product", "--output", str(dump),
                env=monolith_env)
    live.manage(live.CATALOG_MANAGE, "migrate", "--noinput", "-v", "0", env=service_env)
    live.manage(live.CATALOG_MANAGE, "catalog_import", str(dump), env=service_env)
    # The runbook: flip ownership in both projects' databases (the old owner first, one epoch), then allocate ids
    # above the monolith's.
    live.manage(live.MONOLITH_MANAGE, "sync_ownership", "--set", "product=catalog@1", "--set", "category=catalog@1",
                env=monolith_env)
    live.manage(live.CATALOG_MANAGE, "sync_ownership", "--set", "product=catalog@1", "--set", "category=catalog@1",
                env=service_env)
    live.manage(live.CATALOG_MANAGE, "catalog_id_sequences", "--headroom", "100", env=service_env)

    servers = [
        live.LiveServer(live.MONOLITH_MANAGE, env=monolith_env, log=tmp_path / "monolith.log"),
        live.LiveServer(live.CATALOG_MANAGE, env=service_env, log=tmp_path / "catalog.log"),
    ]
    background: list[subprocess.Popen] = []
    consumer = subprocess.Popen(
        [sys.executable, str(live.MONOLITH_MANAGE), "sync_consume"], cwd=live.REPO, env=monolith_env,
        stdout=(tmp_path / "consume.log").open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        for server in servers:
            server.wait_ready()
        monolith_url, service_url = servers[0].url, servers[1].url
        auth = {"Authorization": f"Bearer {TOKEN}", "Host": live.SHARED_HOST}

        created = requests.post(f"{service_url}/api/products/", headers=auth, timeout=HTTP_TIMEOUT, json={
            "sku": "FLIP-1", "name": "Flipped Lamp", "price": "49.00", "category": 1})
        assert created.status_code == 201, created.text
        product_id = created.json()["id"]
        assert product_id > 130  # above every monolith id + headroom: no clash possible
        doomed = requests.post(f"{service_url}/api/products/", headers=auth, timeout=HTTP_TIMEOUT,
                               json={"sku": "FLIP-2", "name": "Short Lived", "price": "1.00"}).json()["id"]
        patched = requests.patch(f"{service_url}/api/products/{product_id}/", headers=auth,
                                 timeout=HTTP_TIMEOUT, json={"price": "45.50"})
        assert patched.status_code == 200, patched.text
        deleted = requests.delete(f"{service_url}/api/products/{doomed}/", headers=auth, timeout=HTTP_TIMEOUT)
        assert deleted.status_code == 204

        # The relay runs as in production (a loop retrying with backoff), not as a one-shot whose single
        # attempt a slow broker confirm could cut short on a loaded machine.
        relay = subprocess.Popen(
            [sys.executable, str(live.CATALOG_MANAGE), "sync_relay"], cwd=live.REPO, env=service_env,
            stdout=(tmp_path / "relay.log").open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        background.append(relay)

        def monolith_has_it():
            response = requests.get(f"{monolith_url}/api/products/{product_id}/",
                                    headers={"Host": live.SHARED_HOST}, timeout=HTTP_TIMEOUT)
            return response.status_code == 200 and response.json()["price"] == "45.50" and response
        on_monolith = wait_until(monolith_has_it, what="the product on the monolith").json()
        on_service = requests.get(f"{service_url}/api/products/{product_id}/", headers={"Host": live.SHARED_HOST},
                                  timeout=HTTP_TIMEOUT).json()
        assert on_monolith == on_service  # same id, fields and timestamps

        def applied_from_catalog() -> int:
            out = live.manage(live.MONOLITH_MANAGE, "shell", "-c", INBOX_COUNT, env=monolith_env)
            return int(out.strip().splitlines()[-1])

        # every one of the four writes applied exactly once (the inbox dedupes any redelivery)
        wait_until(lambda: applied_from_catalog() == 4, what="four events from the catalog in the monolith's inbox")
        gone = requests.get(f"{monolith_url}/api/products/{doomed}/", headers={"Host": live.SHARED_HOST},
                            timeout=HTTP_TIMEOUT)
        assert gone.status_code == 404

        verify = subprocess.run(
            [sys.executable, str(live.CATALOG_MANAGE), "sync_verify", "--aggregate", "product",
             "--source", service_url, "--follower", monolith_url],
            cwd=live.REPO, env=service_env, capture_output=True, text=True, timeout=60,
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert " 0 difference(s)" in verify.stdout
    finally:
        for process in [consumer, *background]:
            process.terminate()
            process.wait(timeout=10)
        for server in servers:
            server.stop()
