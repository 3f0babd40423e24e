"""Domain errors of the data plane (rendered by servicekit's handler as ``{"error": {...}}``)."""

from servicekit.errors import Conflict, InvalidInput, NotFound


class NotOwner(Conflict):
    """This project does not own writes of the aggregate (another project does, after a migration step)."""

    code = "not_owner"


class NotInTransaction(RuntimeError):
    """event_publish was called outside transaction.atomic(): the event could outlive a rolled-back write."""


class SchemaError(InvalidInput):
    """An event payload does not match the schema of its (event_type, schema_version)."""

    code = "invalid_event"


class UnknownAggregate(NotFound):
    code = "unknown_aggregate"
