"""One trace across the seam, with real processes: an HTTP write through `strangler-proxy run` to the monolith,
its outbox row, the monolith's relay, the broker, the catalog service's consumer and handler, every process
exporting OpenTelemetry spans over OTLP/HTTP to a receiver this test starts (tests/otlp_receiver.py).

On the embedded default (SQLite + sqlite-queue) and on PostgreSQL + RabbitMQ. The processes are configured the
standard way only (OTEL_EXPORTER_OTLP_ENDPOINT and the SDK's batch delay), and each names itself.
"""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import pytest

from servicekit.trace_context import traceparent_parse
from tests.otlp_receiver import OtlpReceiver
from tests.strangler_proxy.running_proxy import Proxy
from tests.strangler_proxy.upstream_servers import free_port
from tests.strangler_sync.processes import PgDatabases, broker_cleanup, two_projects
from tests.waiting import WAIT_TIMEOUT, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SETUP = """
import json
from django.contrib.auth import get_user_model
from monolith.catalog import services
get_user_model().objects.create_superuser("tracer", "tracer@example.com", "tracer-pass")
category = services.category_create(name="Traced")
print(json.dumps({"id": category.id}))
"""
BASIC = "Basic " + base64.b64encode(b"tracer:tracer-pass").decode()
WANTED = ("proxy PATCH", "outbox write category.updated", "relay publish category.updated",
          "consume apply category.updated", "handle category.updated")


@pytest.fixture(params=[
    pytest.param("embedded", marks=pytest.mark.backend_independent),  # its own SQLite files, whatever the suite uses
    pytest.param("postgres+rabbitmq", marks=[pytest.mark.postgres, pytest.mark.rabbitmq])])
def backend(request, rabbitmq_url):
    if request.param == "embedded":
        yield {"broker_url": "sqlite-queue://", "databases": None}
        return
    databases = PgDatabases()
    try:
        yield {"broker_url": rabbitmq_url, "databases": databases}
    finally:
        databases.drop_all()


@pytest.fixture
def receiver(monkeypatch):
    receiver = OtlpReceiver()
    # inherited by every process below: the standard variables, nothing of ours
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # ms: export promptly
    for name in ("OTEL_SERVICE_NAME", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    yield receiver
    receiver.stop()


def test_one_http_write_through_the_proxy_is_one_trace_to_the_followers_handler(tmp_path, backend, receiver):
    monolith, catalog = two_projects(tmp_path, broker_url=backend["broker_url"], databases=backend["databases"])
    proxy = None
    try:
        category_id = monolith.shell_json(SETUP)["id"]
        catalog.start("sync_consume")
        monolith.start("sync_relay")
        monolith.serve()
        proxy = Proxy(tmp_path, monolith, SimpleNamespace(url=f"http://127.0.0.1:{free_port()}"))
        status, headers, body = proxy.request(
            "PATCH", f"/api/categories/{category_id}/", body=json.dumps({"name": "Traced v2"}).encode(),
            headers={"Content-Type": "application/json", "Authorization": BASIC})
        assert status == 200, body
        trace_id = traceparent_parse(headers["traceparent"]).trace_id

        def trace_complete():
            spans = receiver.spans(trace_id)
            names = {s.name for s in spans}
            return spans if all(name in names for name in WANTED) else None

        spans = wait_until(trace_complete, timeout=WAIT_TIMEOUT * 2, what=lambda: "the whole trace; received: " + str(
            sorted({(s.service, s.name) for s in receiver.spans(trace_id)})))
        named = {s.name: s for s in spans}
        proxy_span = named["proxy PATCH"]
        [request_span] = [s for s in spans if s.service == "monolith" and s.kind == "SERVER"]
        write, publish = named["outbox write category.updated"], named["relay publish category.updated"]
        apply, handle = named["consume apply category.updated"], named["handle category.updated"]

        assert {(s.name, s.service) for s in (proxy_span, request_span, write, publish, apply, handle)} == {
            ("proxy PATCH", "strangler-proxy"), (request_span.name, "monolith"),
            ("outbox write category.updated", "monolith"), ("relay publish category.updated", "monolith"),
            ("consume apply category.updated", "catalog"), ("handle category.updated", "catalog")}
        # proxy -> monolith request -> outbox write -> (relay publish, consumer apply -> handler)
        assert proxy_span.parent_span_id == ""  # the client sent no traceparent: the proxy started the trace
        assert request_span.parent_span_id == proxy_span.span_id
        assert write.parent_span_id == request_span.span_id
        assert publish.parent_span_id == write.span_id and apply.parent_span_id == write.span_id
        assert handle.parent_span_id == apply.span_id
        assert proxy_span.attributes["http.response.status_code"] == 200
        assert apply.attributes["strangler.outcome"] == "applied"
        # the response's traceparent names the monolith's exported span (its logs carry the same ids)
        assert traceparent_parse(headers["traceparent"]).span_id == request_span.span_id
        assert request_span.start_ns >= proxy_span.start_ns and publish.start_ns >= write.start_ns
    finally:
        if proxy is not None:
            proxy.stop()
        monolith.stop_all()
        catalog.stop_all()
        if backend["databases"] is not None:
            broker_cleanup(backend["broker_url"], monolith.env["STRANGLER_SYNC_NAMESPACE"])
