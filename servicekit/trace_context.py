"""W3C trace context (``traceparent``): read it from a request or start one, keep it in a context var for the
outbox envelope and the logs, and put it back when a consumer applies the event.

Only the ``traceparent`` header's version 00 format is handled here
(https://www.w3.org/TR/trace-context/#traceparent-header); an invalid value is ignored and a new trace is
started, as the recommendation asks, so a client cannot inject anything into logs or envelopes.
"""

from __future__ import annotations

import contextvars
import logging
import re
import secrets
from contextlib import contextmanager
from dataclasses import dataclass

HEADER = "traceparent"
META_KEY = "HTTP_TRACEPARENT"
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_INVALID_TRACE_ID = "0" * 32
_INVALID_SPAN_ID = "0" * 16


@dataclass(frozen=True, slots=True)
class TraceContext:
    trace_id: str
    span_id: str
    flags: str = "01"

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


current_trace: contextvars.ContextVar[TraceContext | None] = contextvars.ContextVar("trace_context", default=None)


def traceparent_parse(value: str | None) -> TraceContext | None:
    """The context a valid version-00 ``traceparent`` names; None for anything else (absent, malformed, zeros)."""
    match = _TRACEPARENT.match(value.strip()) if isinstance(value, str) else None
    if match is None or match[1] == _INVALID_TRACE_ID or match[2] == _INVALID_SPAN_ID:
        return None
    return TraceContext(trace_id=match[1], span_id=match[2], flags=match[3])


def trace_start() -> TraceContext:
    """A new trace (sampled flag set: whether to record is the exporter's sampler's decision)."""
    return TraceContext(trace_id=secrets.token_hex(16), span_id=secrets.token_hex(8))


def trace_child(parent: TraceContext) -> TraceContext:
    """A new span id in the parent's trace: what this process does on behalf of the caller."""
    return TraceContext(trace_id=parent.trace_id, span_id=secrets.token_hex(8), flags=parent.flags)


def get_traceparent() -> str | None:
    context = current_trace.get()
    return context.traceparent if context is not None else None


@contextmanager
def trace_continued(traceparent: str | None):
    """Run the block as a child span of ``traceparent`` (a new trace when it is absent or invalid)."""
    parent = traceparent_parse(traceparent)
    token = current_trace.set(trace_child(parent) if parent is not None else trace_start())
    try:
        yield current_trace.get()
    finally:
        current_trace.reset(token)


class TraceContextMiddleware:
    """Continues the caller's trace (or starts one) for the request and answers with its ``traceparent``."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with trace_continued(request.META.get(META_KEY)) as context:
            request.trace_context = context
            response = self.get_response(request)
        response[HEADER] = context.traceparent
        return response


class TraceContextLogFilter(logging.Filter):
    """Adds trace_id and span_id to every log record (None outside a trace)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = current_trace.get()
        if not hasattr(record, "trace_id"):
            record.trace_id = context.trace_id if context is not None else None
        if not hasattr(record, "span_id"):
            record.span_id = context.span_id if context is not None else None
        return True
