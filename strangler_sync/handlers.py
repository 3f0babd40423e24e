"""Handler registry: a consuming project maps event types to functions in its apps' ``sync_handlers.py`` modules.

Example (``billing_service/sync_handlers.py``; the event names come from the emitter's declaration,
see ``strangler_sync.aggregates``)::

    from strangler_sync.handlers import SyncEvent, sync_handler

    from billing_service.events import INVOICE

    @sync_handler(INVOICE.event("created"), INVOICE.event("updated"), INVOICE.event("snapshot"))
    def invoice_upsert(*, event: SyncEvent) -> None:
        invoice_apply_synced(invoice_id=event.aggregate_key, data=event.payload)

A handler for an event type of an aggregate not in ``STRANGLER_SYNC["AGGREGATES"]`` is reported by
``manage.py check`` (``strangler_sync.checks``).

The consumer calls the handler inside the transaction that also records the InboxMessage and the
AppliedVersion, so the handler must only touch this project's database (no HTTP, no broker).

Bulk path (optional): ``@sync_bulk_handler(*types)`` registers ``fn(*, events: list[SyncEvent])`` that
applies many events of those types at once (one upsert statement instead of one per event). The
consumer calls it with events that already passed the inbox and version guard, at most one per
aggregate per call, in the same transaction; the per-event handler stays registered for everything
else (fallback when the batch fails, single-event ``inbox_apply``). Both must give the same result.

Loop prevention: a handler writes through the follower's own write path *without* emitting events
(pass ``origin=event.origin`` or call a ``*_apply_synced`` service). As a safety net, ``event_publish``
is a no-op while a synced event is being applied (``applying_synced_event()``), so a follower that
re-uses an emitting service never echoes the event back to the owner; on PostgreSQL the same context
sets ``strangler.applying`` for the transaction, which silences automatic-capture triggers
(``strangler_sync.capture``).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.utils.module_loading import autodiscover_modules


@dataclass(frozen=True)
class SyncEvent:
    """A received event (the envelope the relay publishes)."""

    message_id: str
    event_type: str
    aggregate_type: str
    aggregate_id: str
    version: int
    schema_version: int
    payload: dict
    occurred_at: datetime
    origin: str
    correlation_id: str
    traceparent: str = ""  # W3C trace context of the write that emitted it; "" from old publishers
    epoch: int | None = None  # the owner's ownership epoch; None from old publishers and capture triggers

    @property
    def aggregate_id_int(self) -> int:
        return int(self.aggregate_id)

    @property
    def aggregate_key(self):
        """The key typed as the aggregate declares it (int, uuid.UUID or str)."""
        from strangler_sync.conf import sync_settings

        return sync_settings().aggregate(self.aggregate_type).key_value(self.aggregate_id)

    @property
    def action(self) -> str:
        return self.event_type.rsplit(".", 1)[-1]


Handler = Callable[..., None]
_registry: dict[str, Handler] = {}
_bulk_registry: dict[str, Handler] = {}
_applying: contextvars.ContextVar[SyncEvent | None] = contextvars.ContextVar("strangler_sync_applying", default=None)


class HandlerAlreadyRegistered(RuntimeError):
    pass


def sync_handler(*event_types: str) -> Callable[[Handler], Handler]:
    """Register the decorated function ``fn(*, event: SyncEvent)`` for each event type (one handler per type)."""
    if not event_types:
        raise TypeError("sync_handler needs at least one event type")

    def decorate(fn: Handler) -> Handler:
        for event_type in event_types:
            existing = _registry.get(event_type)
            if existing is not None and existing is not fn and _qualname(existing) != _qualname(fn):
                raise HandlerAlreadyRegistered(
                    f"{event_type!r} already handled by {_qualname(existing)}; cannot add {_qualname(fn)}"
                )
            _registry[event_type] = fn
        return fn

    return decorate


def sync_bulk_handler(*event_types: str) -> Callable[[Handler], Handler]:
    """Register ``fn(*, events: list[SyncEvent])`` as the many-at-once path for each event type."""
    if not event_types:
        raise TypeError("sync_bulk_handler needs at least one event type")

    def decorate(fn: Handler) -> Handler:
        for event_type in event_types:
            existing = _bulk_registry.get(event_type)
            if existing is not None and existing is not fn and _qualname(existing) != _qualname(fn):
                raise HandlerAlreadyRegistered(
                    f"{event_type!r} already bulk-handled by {_qualname(existing)}; cannot add {_qualname(fn)}"
                )
            _bulk_registry[event_type] = fn
        return fn

    return decorate


def bulk_handler_get(*, event_type: str) -> Handler | None:
    return _bulk_registry.get(event_type)


def _qualname(fn: Handler) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def handler_get(*, event_type: str) -> Handler | None:
    return _registry.get(event_type)


def handlers_registered() -> dict[str, Handler]:
    return dict(_registry)


def handlers_bulk_registered() -> dict[str, Handler]:
    return dict(_bulk_registry)


def handler_unregister(*, event_type: str) -> None:
    """For tests that register temporary handlers."""
    _registry.pop(event_type, None)
    _bulk_registry.pop(event_type, None)


def handlers_autodiscover() -> None:
    autodiscover_modules("sync_handlers")


@contextlib.contextmanager
def applying_synced_event(event: SyncEvent):
    """While applying ``event``: ``event_publish`` is a no-op and capture triggers stay silent (PostgreSQL)."""
    from strangler_sync.capture import APPLYING_SETTING, capture_applying, capture_setting_cleared

    token = _applying.set(event)
    try:
        if capture_applying():
            with capture_setting_cleared(APPLYING_SETTING):
                yield
        else:
            yield
    finally:
        _applying.reset(token)


def current_synced_event() -> SyncEvent | None:
    """The event being applied right now (None outside the consumer)."""
    return _applying.get()
