"""servicekit.tracing: which OTEL_* turn tracing on, that off costs no import, what a missing extra or an
unsupported exporter says, the Django wiring, and the request middleware adopting the instrumentation's span."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.http import HttpResponse
from django.test import RequestFactory
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from servicekit.optional import MissingExtra
from servicekit.trace_context import current_trace, traceparent_parse
from servicekit.tracing import (
    TracedRequestMiddleware,
    TracingConfigError,
    span_scope,
    span_start,
    span_trace_context,
    tracing_setup,
    tracing_start,
    tracing_stop,
    tracing_wanted,
)

ROOT = Path(__file__).resolve().parents[2]
CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(("environ", "wanted"), [
    ({}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
    ({"OTEL_TRACES_EXPORTER": "console"}, True),
    ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, False),
    ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, False),
    ({"OTEL_SERVICE_NAME": "shop", "OTEL_TRACES_SAMPLER": "always_on"}, False),  # nowhere to export to
])
def test_what_turns_tracing_on(environ, wanted):
    assert tracing_wanted(environ) is wanted


def _django(env: dict, code: str) -> dict:
    """Run `code` after django.setup() of the monolith in a fresh process; its last stdout line as JSON."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run([sys.executable, "-c", "import django, json, sys; django.setup()\n" + code], cwd=ROOT,
                            env={**clean, "DJANGO_SETTINGS_MODULE": "monolith.settings", **env},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


CHECK = """
from django.conf import settings
from servicekit.tracing import tracing_on
imported = sorted({m.split(".")[0] for m in sys.modules if "opentelemetry" in m})
print(json.dumps({"on": tracing_on(), "imported": imported, "middleware": settings.MIDDLEWARE[:3]}))
"""


def test_off_by_default_nothing_of_opentelemetry_is_imported():
    seen = _django({}, CHECK)
    assert seen["on"] is False and seen["imported"] == []
    assert "servicekit.trace_context.TraceContextMiddleware" in seen["middleware"]


def test_on_the_django_instrumentation_goes_first_and_the_trace_middleware_follows_its_span():
    seen = _django({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}, CHECK)
    assert seen["on"] is True and seen["imported"] == ["opentelemetry"]
    assert seen["middleware"][0] == "opentelemetry.instrumentation.django.middleware.otel_middleware._DjangoMiddleware"
    assert "servicekit.tracing.TracedRequestMiddleware" in seen["middleware"]


def test_tracing_asked_for_without_the_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)  # what an install without [otel] finds
    with pytest.raises(MissingExtra) as caught:
        tracing_setup(service_name="x", environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    assert str(caught.value) == ("tracing (OTEL_* is set) needs opentelemetry, which is not installed: "
                                 "pip install 'strangler-fig[otel]'")


@pytest.mark.parametrize(("environ", "message"), [
    ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER='zipkin': this toolkit exports with otlp or console"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
     "OTEL_EXPORTER_OTLP_PROTOCOL='grpc': only http/protobuf is shipped"),
])
def test_an_exporter_this_toolkit_does_not_ship_is_one_line(environ, message):
    with pytest.raises(TracingConfigError, match=message):
        tracing_setup(service_name="x", environ=environ)


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    tracing_start(service_name="test", exporter=exporter, batch=False)
    yield exporter
    tracing_stop()


def test_the_request_middleware_takes_the_instrumentations_span_as_the_requests_trace(spans):
    seen = []

    def view(request):
        seen.append(current_trace.get())
        return HttpResponse("ok")

    middleware = TracedRequestMiddleware(view)
    server_span = span_start(name="GET /", parent=traceparent_parse(CALLER), kind="server")
    with span_scope(server_span):
        response = middleware(RequestFactory().get("/", HTTP_TRACEPARENT=CALLER))
    server_span.end()
    assert seen[0] == span_trace_context(server_span) == traceparent_parse(response["traceparent"])
    # a request the instrumentation left alone (an excluded URL): continued as TraceContextMiddleware does
    response = middleware(RequestFactory().get("/healthz", HTTP_TRACEPARENT=CALLER))
    assert seen[1].trace_id == "4bf92f3577b34da6a3ce929d0e0e4736" and seen[1].span_id != "00f067aa0ba902b7"
    assert current_trace.get() is None
