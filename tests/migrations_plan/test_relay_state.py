"""Relay gates and the dashboard read each project's /sync/relay/ over HTTP: no settings import, no shared disk."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from migrations_plan.gates import FAIL, PASS, UNKNOWN, Observation, gates_evaluate
from migrations_plan.metrics import MetricsUnavailable
from migrations_plan.relay_state import relay_state_fetch
from migrations_plan.spec import Gate, Plan
from strangler_proxy.loader import load_route_file
from strangler_sync.models import DeadLetter, OutboxEvent

from .conftest import write_routes


def outbox_row(*, status: str = OutboxEvent.Status.PENDING, age_seconds: float = 0.0) -> OutboxEvent:
    at = timezone.now() - timedelta(seconds=age_seconds)
    return OutboxEvent.objects.create(event_type="product.updated", aggregate_type="product", aggregate_id="1",
                                      version=1, payload={}, occurred_at=at, origin="monolith", status=status,
                                      next_attempt_at=at)


@pytest.mark.django_db
def test_relay_endpoint_answers_the_outbox_numbers(client):
    outbox_row(age_seconds=120)
    outbox_row()
    outbox_row(status=OutboxEvent.Status.PUBLISHED)
    outbox_row(status=OutboxEvent.Status.DEAD)
    DeadLetter.objects.create(message_id="m-1", queue="q", event_type="product.updated", body="{}",
                              error="handler failed: IntegrityError", attempts=5)
    answer = client.get("/sync/relay/")
    assert answer.status_code == 200
    data = answer.json()
    assert (data["backlog"], data["outbox_dead"], data["dead_letters"]) == (2, 1, 1)
    assert "published" not in data  # a scan of every retained row: only when asked
    assert client.get("/sync/relay/", {"published": "1"}).json()["published"] == 1
    assert 120 <= data["oldest_pending_age_seconds"] < 180
    assert data["last_dead_letter"] == "product.updated: handler failed: IntegrityError"
    assert data["project"] == "monolith"


@pytest.mark.django_db(transaction=True)
def test_relay_gates_read_each_project_over_http(live_server, tmp_path):
    # The monolith is an upstream of the route file (by name); the second project is named by its base URL.
    routes = write_routes(tmp_path / "routes.yaml", monolith=live_server.url)
    plan = Plan(name="t", description="", service="catalog", routes=("/api/products/",),
                proxy_metrics="http://127.0.0.1:9/metrics", sync_projects=("monolith", live_server.url + "/"),
                steps=())
    for _ in range(3):
        outbox_row(age_seconds=40)

    def evaluate(*gates):
        observation = Observation(plan=plan, table=load_route_file(routes), entered_at=time.time())
        return gates_evaluate(gates=gates, observation=observation)

    backlog, lag = evaluate(Gate("max_relay_backlog", 5), Gate("max_relay_lag_seconds", 30))
    assert (backlog.status, backlog.value) == (FAIL, 6)  # the same database behind both names: 3 + 3
    assert backlog.detail == f"monolith 3, {live_server.url}/ 3"
    assert lag.status == FAIL and 40 <= lag.value < 100
    OutboxEvent.objects.update(status=OutboxEvent.Status.PUBLISHED)
    backlog, lag = evaluate(Gate("max_relay_backlog", 0), Gate("max_relay_lag_seconds", 30))
    assert (backlog.status, backlog.value, lag.status, lag.value) == (PASS, 0, PASS, 0)


def test_a_project_that_does_not_answer_is_unknown(tmp_path):
    routes = write_routes(tmp_path / "routes.yaml")  # every upstream is a closed port
    plan = Plan(name="t", description="", service="catalog", routes=("/api/products/",),
                proxy_metrics="http://127.0.0.1:9/metrics", sync_projects=("monolith",), steps=())
    observation = Observation(plan=plan, table=load_route_file(routes), entered_at=time.time())
    [result] = gates_evaluate(gates=(Gate("max_relay_backlog", 0),), observation=observation)
    assert (result.status, result.detail) == (UNKNOWN, "http://127.0.0.1:9/sync/relay/: ConnectionError")


@pytest.mark.django_db(transaction=True)
def test_an_answer_that_is_not_relay_state_is_refused(live_server):
    with pytest.raises(MetricsUnavailable, match="answered 404"):
        relay_state_fetch(base_url=live_server.url + "/api")  # /api/sync/relay/ does not exist


def test_the_control_plane_imports_no_project(tmp_path):
    """Gates, services, CLI and dashboard load with no settings module and nothing of the storefront."""
    import os
    import subprocess
    import sys

    probe = ("import sys, django.conf\n"
             "import migrations_plan.cli, migrations_plan.services, migrations_plan.gates\n"
             "import migrations_plan.dashboard.selectors, migrations_plan.regression.cli\n"
             "assert not django.conf.settings.configured\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('monolith', 'extracted', 'demo')))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")}
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
