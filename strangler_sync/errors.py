"""Domain errors of the data plane (rendered by servicekit's handler as ``{"error": {...}}``).

``NotOwner`` is also a DRF ``APIException`` (409, the same JSON body), so a write refused on the non-owner
answers 409 under any DRF exception handler, and ``strangler_sync.middleware.NotOwnerMiddleware`` answers it
as JSON from plain Django views: a project's own error handling never turns a flipped write into a 500.
"""

from rest_framework import status
from rest_framework.exceptions import APIException

from servicekit.errors import Conflict, InvalidInput, NotFound, error_body


class NotOwner(Conflict, APIException):
    """This project does not own writes of the aggregate (another project does, after a migration step)."""

    code = "not_owner"
    status_code = status.HTTP_409_CONFLICT
    default_code = "not_owner"

    def __init__(self, message: str, *, details: dict | None = None):
        Conflict.__init__(self, message, details=details)
        APIException.__init__(self, detail=self.body(), code=self.code)

    def body(self) -> dict:
        """The JSON answer: ``{"error": {"code": "not_owner", "message", "details"}}``."""
        return error_body(self.code, self.message, self.details)

    def __str__(self) -> str:
        return self.message


class NotInTransaction(RuntimeError):
    """event_publish was called outside transaction.atomic(): the event could outlive a rolled-back write."""


class SchemaError(InvalidInput):
    """An event payload does not match the schema of its (event_type, schema_version)."""

    code = "invalid_event"


class UnknownAggregate(NotFound):
    code = "unknown_aggregate"


class StaleEpoch(Conflict):
    """An ownership flip asked for an epoch below the one this project already has (409 ``stale_epoch``)."""

    code = "stale_epoch"
