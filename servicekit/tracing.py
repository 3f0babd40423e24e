"""OpenTelemetry spans for the W3C trace that servicekit.trace_context carries: off unless OTEL_* asks for it.

Off (the default) nothing of OpenTelemetry is imported and every caller's check is ``tracing_on()``, a global
read. On, spans are recorded with the official SDK and exported over OTLP/HTTP by a batch processor (a
background thread: a request never waits for the collector). Tracing is on in a process when

- ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set, or
- ``OTEL_TRACES_EXPORTER`` is ``otlp`` or ``console`` (``none`` turns it off),

and ``OTEL_SDK_DISABLED`` is not ``true``. Everything else is the SDK's own environment: the sampler
(``OTEL_TRACES_SAMPLER``, ``OTEL_TRACES_SAMPLER_ARG``; parent-based always-on by default), the batch processor
(``OTEL_BSP_*``), the exporter's headers, timeout and compression (``OTEL_EXPORTER_OTLP_*``) and resource
attributes (``OTEL_RESOURCE_ATTRIBUTES``). ``OTEL_SERVICE_NAME`` overrides the name each process gives itself.

The ids stay those of ``trace_context.current_trace``: a span started here becomes the current trace context for
the block it covers (so the JSON logs, the outbox row and the response's ``traceparent`` name the exported
span), and a span's parent is whatever ``traceparent`` the caller holds (a header, an outbox envelope).
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager

from servicekit.optional import optional_import
from servicekit.trace_context import HEADER, META_KEY, TraceContext, current_trace, trace_continued

INSTRUMENTATION = "strangler"
TRACE_CONTEXT_MIDDLEWARE = "servicekit.trace_context.TraceContextMiddleware"
_EXPORTERS = ("otlp", "console")
# Django requests that are not worth a trace each (probes, scrapes) unless OTEL_PYTHON_DJANGO_EXCLUDED_URLS says
DEFAULT_EXCLUDED_URLS = "healthz,readyz,metrics"

_tracer = None  # the opentelemetry Tracer while tracing is on
_provider = None
_api = None  # the opentelemetry.trace module, imported when tracing is turned on


class TracingConfigError(ValueError):
    """The OTEL_* environment asks for something this toolkit does not ship (one line, names the variable)."""


def tracing_wanted(environ=None) -> bool:
    """Whether the environment turns tracing on (see the module's docstring)."""
    environ = os.environ if environ is None else environ
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def tracing_on() -> bool:
    return _tracer is not None


def _exporter_from(environ):
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() or "otlp"
    if exporter not in _EXPORTERS:
        raise TracingConfigError(f"OTEL_TRACES_EXPORTER={exporter!r}: this toolkit exports with "
                                 f"{' or '.join(_EXPORTERS)} (or none)")
    if exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    protocol = (environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf").strip()
    if protocol != "http/protobuf":
        raise TracingConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: only http/protobuf is shipped "
                                 "(strangler-fig[otel] installs the OTLP/HTTP exporter)")
    http_exporter = optional_import("opentelemetry.exporter.otlp.proto.http.trace_exporter", extra="otel",
                                    needed_for="tracing (OTEL_* is set)")
    return http_exporter.OTLPSpanExporter()  # endpoint, headers, timeout, compression: from OTEL_EXPORTER_OTLP_*


def tracing_setup(*, service_name: str, environ=None) -> bool:
    """Turn tracing on in this process if the environment asks for it (once; later calls change nothing).

    Returns whether tracing is on. Raises MissingExtra when it is asked for without strangler-fig[otel], and
    TracingConfigError for an exporter or protocol this toolkit does not ship.
    """
    environ = os.environ if environ is None else environ
    if _tracer is not None or not tracing_wanted(environ):
        return tracing_on()
    optional_import("opentelemetry.sdk.trace", extra="otel", needed_for="tracing (OTEL_* is set)")
    from opentelemetry import trace

    tracing_start(service_name=environ.get("OTEL_SERVICE_NAME") or service_name, exporter=_exporter_from(environ))
    trace.set_tracer_provider(_provider)  # anything else instrumented in the process joins the same traces
    return True


def tracing_start(*, service_name: str, exporter, sampler=None, batch: bool = True) -> None:
    """Record spans with this exporter (the environment's sampler unless one is given). Tests pass an in-memory
    exporter and ``batch=False`` (each span exported as it ends); tracing_setup is the way in otherwise."""
    global _tracer, _provider, _api
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    tracing_stop()
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}), sampler=sampler)
    provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
    _api, _provider, _tracer = trace, provider, provider.get_tracer(INSTRUMENTATION)


def tracing_stop() -> None:
    """Export what is buffered and turn tracing off (tests; a process that exits flushes by itself)."""
    global _tracer, _provider
    provider, _tracer, _provider = _provider, None, None
    if provider is not None:
        provider.shutdown()


def django_instrument() -> bool:
    """With tracing on: OpenTelemetry's Django instrumentation (its middleware first in MIDDLEWARE) and, in the
    place of TraceContextMiddleware, TracedRequestMiddleware. Call before the first request (AppConfig.ready)."""
    if _tracer is None:
        return False
    from django.conf import settings

    instrumentation = optional_import("opentelemetry.instrumentation.django", extra="otel",
                                      needed_for="tracing Django requests (OTEL_* is set)")
    instrumentor = instrumentation.DjangoInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        excluded = os.environ.get("OTEL_PYTHON_DJANGO_EXCLUDED_URLS", DEFAULT_EXCLUDED_URLS)
        instrumentor.instrument(tracer_provider=_provider, excluded_urls=excluded)
    settings.MIDDLEWARE = [f"{__name__}.TracedRequestMiddleware" if name == TRACE_CONTEXT_MIDDLEWARE else name
                           for name in settings.MIDDLEWARE]
    return True


# -- spans ------------------------------------------------------------------------------------------------------

def _kind(name: str):
    return getattr(_api.SpanKind, name.upper())


def _parent(parent: TraceContext | None):
    """An OpenTelemetry Context whose (remote) span is `parent`; an empty one (a new trace) for None."""
    from opentelemetry.context import Context

    if parent is None:
        return Context()
    span_context = _api.SpanContext(trace_id=int(parent.trace_id, 16), span_id=int(parent.span_id, 16),
                                    is_remote=True, trace_flags=_api.TraceFlags(int(parent.flags, 16)))
    return _api.set_span_in_context(_api.NonRecordingSpan(span_context))


def span_trace_context(span) -> TraceContext:
    """The trace context (ids, sampled flag) naming an OpenTelemetry span."""
    context = span.get_span_context()
    return TraceContext(trace_id=format(context.trace_id, "032x"), span_id=format(context.span_id, "016x"),
                        flags=format(int(context.trace_flags), "02x"))


def span_start(*, name: str, parent: TraceContext | None, kind: str = "internal", attributes: dict | None = None,
               start_ns: int | None = None):
    """Start a span, child of `parent` (a new trace when None); the caller ends it. Tracing must be on."""
    return _tracer.start_span(name, context=_parent(parent), kind=_kind(kind), attributes=attributes,
                              start_time=start_ns)


@contextmanager
def span_scope(span):
    """Make `span` the current one for the block: the OpenTelemetry context and trace_context.current_trace."""
    from opentelemetry import context

    token = context.attach(_api.set_span_in_context(span))
    trace_token = current_trace.set(span_trace_context(span))
    try:
        yield current_trace.get()
    finally:
        current_trace.reset(trace_token)
        context.detach(token)


@contextmanager
def span_continued(*, name: str, parent: TraceContext | None, kind: str = "internal",
                   attributes: dict | None = None):
    """Run the block in a new span, child of `parent`; an exception marks it failed and goes on. Yields the
    span's TraceContext. With tracing off: trace_context.trace_continued (a span id only, nothing recorded)."""
    if _tracer is None:
        with trace_continued(parent.traceparent if parent is not None else None) as context:
            yield context
        return
    span = span_start(name=name, parent=parent, kind=kind, attributes=attributes)
    try:
        with span_scope(span) as context:
            yield context
    except BaseException as exc:
        span_failed(span, exc)
        raise
    finally:
        span.end()


def span_failed(span, error: BaseException | str) -> None:
    """Mark a span as failed (status ERROR, the exception recorded as an event)."""
    from opentelemetry.trace import Status, StatusCode

    if isinstance(error, BaseException):
        span.record_exception(error)
        error = f"{type(error).__name__}: {error}"
    span.set_status(Status(StatusCode.ERROR, str(error)[:500]))


def now_ns() -> int:
    """A span timestamp (the SDK's clock: nanoseconds since the epoch)."""
    return time.time_ns()


class TracedRequestMiddleware:
    """TraceContextMiddleware when tracing is on: the request's trace context is the span of OpenTelemetry's
    Django middleware (which continued the caller's ``traceparent``), so logs, the outbox and the response's
    ``traceparent`` name a span that is exported. A request that span does not cover (an excluded URL) is
    handled as TraceContextMiddleware would."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        span = _api.get_current_span() if _api is not None else None
        if span is None or not span.get_span_context().is_valid:
            with trace_continued(request.META.get(META_KEY)) as context:
                request.trace_context = context
                response = self.get_response(request)
        else:
            context = request.trace_context = span_trace_context(span)
            token = current_trace.set(context)
            try:
                response = self.get_response(request)
            finally:
                current_trace.reset(token)
        response[HEADER] = context.traceparent
        return response
