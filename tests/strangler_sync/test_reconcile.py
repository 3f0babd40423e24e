"""Continuous reconciliation with real processes: the owner's ``sync_reconcile`` finds a row changed behind the
data plane's back on the follower, re-emits it, records each pass where ``/sync/reconcile/``, ``/metrics`` and
the plan gate read it; an unreachable owner is recorded as a failed pass, never as clean."""

from __future__ import annotations

import time

import pytest
import requests

from migrations_plan.gates import FAIL, PASS, UNKNOWN, Observation, gates_evaluate
from migrations_plan.metrics import Samples
from migrations_plan.spec import Gate, Plan
from strangler_proxy.loader import load_route_file
from tests.migrations_plan.conftest import write_routes
from tests.strangler_sync.processes import (
    INBOX_STATS,
    OUTBOX_STATS,
    PgDatabases,
    broker_cleanup,
    free_port,
    two_projects,
    wait_for,
    write,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

PRICE_OF_3 = ("from {model} import Product as P\n"
              "import json; print(json.dumps(str(P.objects.get(id=3).price)))\n")


def _state(project) -> dict:
    passes = requests.get(project.url + "/sync/reconcile/", timeout=30).json()["passes"]
    assert len(passes) == 1, passes
    return passes[0]


def _gate(project, routes_file):
    plan = Plan(name="t", description="", service="catalog", routes=("/api/products/",),
                proxy_metrics="http://127.0.0.1:9/metrics", sync_projects=(project.url,), steps=())
    observation = Observation(plan=plan, table=load_route_file(routes_file), entered_at=time.time(),
                              baseline=Samples(rows=()))
    return gates_evaluate(gates=(Gate("max_reconcile_clean_age_seconds", 600),), observation=observation)[0]


def _metric(project, name: str, follower: str) -> str:
    text = requests.get(project.url + "/metrics", timeout=30).text
    prefix = f'{name}{{aggregate="product",follower="{follower}"}} '
    return next(line[len(prefix):] for line in text.splitlines() if line.startswith(prefix))


REAL_SERVICES = pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.rabbitmq])


@pytest.mark.parametrize("database", [pytest.param("sqlite", marks=pytest.mark.backend_independent), REAL_SERVICES])
def test_reconcile_finds_repairs_records_and_gates(tmp_path, database, rabbitmq_url):
    databases = PgDatabases() if database == "postgres" else None  # PostgreSQL + RabbitMQ, or the embedded default
    broker_url = rabbitmq_url if databases else "sqlite-queue://"
    monolith, catalog = two_projects(tmp_path, broker_url=broker_url, databases=databases)
    try:
        write(monolith, products=20, updates=10)
        catalog.start("sync_consume")
        monolith.start("sync_relay")
        outbox = monolith.shell_json(OUTBOX_STATS)
        events = outbox["pending"] + outbox["published"]
        wait_for(lambda: catalog.shell_json(INBOX_STATS)["inbox"] == events, what="every event in the inbox")
        monolith.serve()
        catalog.serve()
        routes_file = write_routes(tmp_path / "routes.yaml", monolith=monolith.url, catalog=catalog.url)
        reconcile = ("sync_reconcile", "--aggregate", "product", "--source", monolith.url, "--follower", catalog.url,
                     "--buckets", "16")

        assert _gate(monolith, routes_file).status == UNKNOWN  # no pass recorded yet: never a pass
        clean = monolith.run(*reconcile, "--once", check=False)
        assert clean.returncode == 0, clean.stdout + clean.stderr
        assert _state(monolith)["status"] == "clean" and _gate(monolith, routes_file).status == PASS

        # Behind the data plane's back: a queryset update on the follower emits no event.
        catalog.shell("from extracted.catalog.products.models import Product as P\n"
                      "P.objects.filter(id=3).update(price='999.00')\n")
        found = monolith.run(*reconcile, "--once", check=False)
        assert found.returncode == 1, found.stdout + found.stderr
        state = _state(monolith)
        assert (state["status"], state["differences"], state["repaired"]) == ("repaired", 1, 1)
        assert (state["differences_found_total"], state["repaired_total"], state["passes"]) == (1, 1, 2)
        assert _metric(monolith, "strangler_sync_reconcile_differences_found_total", catalog.url) == "1.0"
        assert _metric(monolith, "strangler_sync_reconcile_repaired_total", catalog.url) == "1.0"
        gate = _gate(monolith, routes_file)
        assert gate.status == FAIL and "last pass repaired (1 difference(s))" in gate.detail

        # The scheduled process: its next passes see the re-emitted row applied and record a clean pass.
        looping = monolith.start(*reconcile, "--every", "1")
        wait_for(lambda: _state(monolith)["status"] == "clean", timeout=180, what="a clean pass after the repair")
        assert looping.poll() is None
        assert catalog.shell_json(PRICE_OF_3.format(model="extracted.catalog.products.models")) == \
            monolith.shell_json(PRICE_OF_3.format(model="monolith.catalog.models"))
        assert _gate(monolith, routes_file).status == PASS
        assert float(_metric(monolith, "strangler_sync_reconcile_last_clean_age_seconds", catalog.url)) < 600
        monolith.stop_all()  # the looping reconciler and the web server; serve again for the failing pass
        monolith.serve()

        # The owner does not answer: the pass is recorded as failed, and the last clean pass stays where it was.
        last_clean = _state(monolith)["last_clean_at"]
        dead = f"http://127.0.0.1:{free_port()}"
        failed = monolith.run("sync_reconcile", "--aggregate", "product", "--source", dead, "--follower", catalog.url,
                              "--once", "--timeout", "5", check=False)
        assert failed.returncode == 2, failed.stdout + failed.stderr
        state = _state(monolith)
        assert state["status"] == "failed" and dead in state["error"] and state["last_clean_at"] == last_clean
        assert state["failed_passes"] == 1
        assert _metric(monolith, "strangler_sync_reconcile_failed_passes_total", catalog.url) == "1.0"
        gate = _gate(monolith, routes_file)
        assert gate.status == FAIL and "last pass failed" in gate.detail

        # After the flip the monolith no longer owns product: it reports a difference, never re-emits it.
        monolith.run("sync_ownership", "--set", "product=catalog")
        catalog.shell("from extracted.catalog.products.models import Product as P\n"
                      "P.objects.filter(id=4).update(price='555.00')\n")
        refused = monolith.run("sync_reconcile", "--aggregate", "product", "--source", monolith.url, "--follower",
                               catalog.url, "--once", check=False)  # the monolith serves on a new port now
        assert refused.returncode == 2, refused.stdout + refused.stderr
        state = _state(monolith)
        assert state["status"] == "failed" and "does not own product" in state["error"]
        assert (state["differences"], state["repaired"], state["repaired_total"]) == (1, 0, 1)
    finally:
        monolith.stop_all()
        catalog.stop_all()
        if databases is not None:
            databases.drop_all()
            broker_cleanup(broker_url, monolith.env["STRANGLER_SYNC_NAMESPACE"])


@pytest.mark.backend_independent  # SQLite files and a broker of its own: CI's pass 1 runs it
def test_sync_reconcile_refuses_bad_input(tmp_path):
    monolith, _ = two_projects(tmp_path, broker_url="sqlite-queue://", databases=None)
    for args, message in ((("--aggregate", "nope"), "aggregate 'nope' is not declared"),
                          (("--aggregate", "product", "--every", "0"), "--every and --timeout must be positive")):
        result = monolith.run("sync_reconcile", *args, "--source", "http://127.0.0.1:9", "--follower",
                              "http://127.0.0.1:9", check=False)
        assert result.returncode == 1 and message in result.stderr, result.stderr
