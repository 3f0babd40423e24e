"""Read-your-writes across the seam, the Django side: ``ReadYourWritesMiddleware`` (add it to ``MIDDLEWARE``).

On the owner, a write's answer says which aggregate versions it emitted (``X-Strangler-Written``: the events
``event_publish`` recorded in this request and committed). The proxy keeps them for the client, and sends them
along with that client's next reads to the follower (``X-Strangler-Read-After``). On the follower the middleware
answers such a read only when its ``AppliedVersion`` of each of those aggregates it follows has reached the
written version (one indexed query), and says so (``X-Strangler-Read-After: ok``); else it answers 409
``behind`` without running the view, and the proxy asks the owner. Wire format: servicekit.write_positions.

Aggregates captured by triggers (``capture="automatic"``) carry positions for the writes made inside
``strangler_sync.capture.capture_context()`` (it reads back the outbox rows its block's triggers wrote); other
captured writes (the admin, raw SQL outside a request's capture_context) carry none.
"""

from __future__ import annotations

import contextvars

from django.db import transaction
from django.db.models import Q
from django.http import JsonResponse

from servicekit.write_positions import (
    MAX_POSITIONS,
    READ_AFTER_BEHIND,
    READ_AFTER_HEADER,
    READ_AFTER_OK,
    WRITTEN_HEADER,
    WRITTEN_MANY,
    Position,
    PositionsInvalid,
    positions_format,
    positions_merge,
    positions_parse,
)
from strangler_sync.handlers import handlers_bulk_registered, handlers_registered
from strangler_sync.models import AppliedVersion

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
READ_AFTER_META = "HTTP_" + READ_AFTER_HEADER.upper().replace("-", "_")

# The positions committed during the current request (None: no request collects them, e.g. a worker).
_written: contextvars.ContextVar[list[Position] | None] = contextvars.ContextVar("strangler_sync_written",
                                                                                 default=None)


def written_position_note(*, aggregate_type: str, aggregate_id: str, version: int) -> None:
    """Called by event_publish inside the write's transaction: the position counts once that commits."""
    collected = _written.get()
    if collected is not None:
        position = Position(aggregate_type, aggregate_id, version)
        transaction.on_commit(lambda: collected.append(position))


def written_collecting() -> bool:
    """Whether a write's positions are being collected (a request under the middleware)."""
    return _written.get() is not None


def followed_aggregate_types() -> frozenset[str]:
    """Aggregate types this project applies events of (it has a handler for one of their event types)."""
    names = [*handlers_registered(), *handlers_bulk_registered()]
    return frozenset(name.rpartition(".")[0] for name in names)


def positions_applied(*, positions: list[Position]) -> bool:
    """Whether this project has applied each position of an aggregate it follows (the others are not its data)."""
    followed = followed_aggregate_types()
    wanted = [p for p in positions if p.aggregate_type in followed]
    if not wanted:
        return True
    query = Q()
    for p in wanted:
        query |= Q(aggregate_type=p.aggregate_type, aggregate_id=p.aggregate_id)
    applied = {(t, i): v for t, i, v in
               AppliedVersion.objects.filter(query).values_list("aggregate_type", "aggregate_id", "version")}
    return all(applied.get((p.aggregate_type, p.aggregate_id), 0) >= p.version for p in wanted)


class ReadYourWritesMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method in SAFE_METHODS:
            wanted = request.META.get(READ_AFTER_META)
            if wanted is None:
                return self.get_response(request)
            return self._read_after(request, wanted)
        token = _written.set([])
        try:
            response = self.get_response(request)
            written = positions_merge(_written.get())
        finally:
            _written.reset(token)
        if written:
            many = len(written) >= MAX_POSITIONS
            response[WRITTEN_HEADER] = WRITTEN_MANY if many else positions_format(written)
        return response

    def _read_after(self, request, wanted: str):
        try:
            positions = positions_parse(wanted)
        except PositionsInvalid as exc:
            return JsonResponse({"error": {"code": "bad_read_after", "message": str(exc), "details": {}}},
                                status=400)
        if not positions_applied(positions=positions):
            response = JsonResponse({"error": {
                "code": "not_caught_up", "message": "This service has not applied your latest write yet.",
                "details": {"positions": positions_format(positions)}}}, status=409)
            response[READ_AFTER_HEADER] = READ_AFTER_BEHIND
            return response
        response = self.get_response(request)
        response[READ_AFTER_HEADER] = READ_AFTER_OK
        return response
