"""A local OTLP/HTTP trace receiver for tests: a tiny HTTP server decoding ExportTraceServiceRequest protobufs.

What the processes under test export to ``OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url`` (POST /v1/traces, the
binary protobuf encoding, gzip or not) is kept as flat ReceivedSpan rows, ids in lowercase hex as in a
``traceparent``. Anything else is answered 404 or 400, as a collector would.
"""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.migrations_plan.procs import BackgroundServer, handler_answer

PATH = "/v1/traces"


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    kind: str  # SERVER, CLIENT, PRODUCER, CONSUMER, INTERNAL
    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a root span
    attributes: dict
    status_code: int  # 0 unset, 1 ok, 2 error
    start_ns: int
    end_ns: int


def _value(any_value):
    field = any_value.WhichOneof("value")
    return getattr(any_value, field) if field else None


def spans_of(request: ExportTraceServiceRequest) -> list[ReceivedSpan]:
    received = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                received.append(ReceivedSpan(
                    service=resource.get("service.name", ""), name=span.name,
                    kind=Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
                    trace_id=span.trace_id.hex(), span_id=span.span_id.hex(), parent_span_id=span.parent_span_id.hex(),
                    attributes={a.key: _value(a.value) for a in span.attributes}, status_code=span.status.code,
                    start_ns=span.start_time_unix_nano, end_ns=span.end_time_unix_nano,
                ))
    return received


class OtlpReceiver(BackgroundServer):
    """Start with ``OtlpReceiver()``, point exporters at ``.url``, read ``.spans()``, ``.stop()`` at the end."""

    def __init__(self):
        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        self.requests = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != PATH:
                    return self._answer(404, b"")
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest()
                try:
                    request.ParseFromString(body)
                except Exception:  # a malformed export: what a collector answers
                    return self._answer(400, b"")
                with owner._lock:
                    owner.requests += 1
                    owner._spans.extend(spans_of(request))
                return self._answer(200, ExportTraceServiceResponse().SerializeToString())

            def _answer(self, status: int, body: bytes) -> None:
                handler_answer(self, status, "application/x-protobuf", body)

            def log_message(self, format, *args):  # noqa: A002 - quiet tests
                pass

        super().__init__(Handler)

    def spans(self, trace_id: str | None = None) -> list[ReceivedSpan]:
        with self._lock:
            return [s for s in self._spans if trace_id is None or s.trace_id == trace_id]
