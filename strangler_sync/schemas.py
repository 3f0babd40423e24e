"""Payload validation against the declared schemas (``strangler_sync.aggregates``), per (event_type, schema_version).

Checked by ``event_publish`` (producer) and by the consumer before a handler runs, so a bad producer
cannot poison a follower and a follower cannot silently misread a newer schema. Extra fields are
allowed (adding a field is backwards compatible); removing or retyping one needs a new schema_version.
"""

from __future__ import annotations

from strangler_sync.aggregates import SNAPSHOT, Schema
from strangler_sync.conf import SyncSettings, sync_settings
from strangler_sync.errors import SchemaError

NoneType = type(None)


_index: tuple[SyncSettings | None, dict[tuple[str, int], Schema]] = (None, {})


def _schemas() -> dict[tuple[str, int], Schema]:
    """(event_type, schema_version) -> Schema of the declared aggregates, rebuilt when the settings change
    (one dict lookup per validated event: the consumer validates every event it receives)."""
    global _index
    config = sync_settings()
    if _index[0] is not config:
        _index = (config, {
            (aggregate.event(action), version): aggregate.schema(action=action, version=version)
            for aggregate in config.aggregates.values() for action in (*aggregate.actions, SNAPSHOT)
            for version in aggregate.schemas
        })
    return _index[1]


def schema_get(*, event_type: str, schema_version: int) -> Schema | None:
    """The declared schema of an event type at a version; None when no declared aggregate has it."""
    return _schemas().get((event_type, schema_version))


def _type_names(types: tuple) -> str:
    return " or ".join("null" if t is NoneType else t.__name__ for t in types)


def payload_validate(*, event_type: str, schema_version: int, payload) -> None:
    """Raise SchemaError unless payload matches the declared schema (undeclared pairs are errors too)."""
    schema = schema_get(event_type=event_type, schema_version=schema_version)
    if schema is None:
        raise SchemaError(
            f"no schema for event {event_type!r} version {schema_version}",
            details={"event_type": event_type, "schema_version": schema_version},
        )
    if not isinstance(payload, dict):
        raise SchemaError("payload must be a JSON object", details={"event_type": event_type})
    problems: dict[str, str] = {}
    for name, types in schema.required.items():
        if name not in payload:
            problems[name] = "required"
        elif not _is_instance(payload[name], types):
            problems[name] = f"expected {_type_names(types)}"
    for name, types in schema.optional.items():
        if name in payload and not _is_instance(payload[name], types):
            problems[name] = f"expected {_type_names(types)}"
    if problems:
        raise SchemaError(f"payload of {event_type!r} v{schema_version} is invalid", details=problems)


def _is_instance(value, types: tuple) -> bool:
    # bool is an int subclass: an int field must not accept True/False.
    if isinstance(value, bool) and bool not in types:
        return False
    return isinstance(value, types)
