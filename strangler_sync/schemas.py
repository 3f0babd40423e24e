"""Versioned payload schemas: required/optional fields and their types per (event_type, schema_version).

Checked by ``event_publish`` (producer) and by the consumer before a handler runs, so a bad producer
cannot poison a follower and a follower cannot silently misread a newer schema. Extra fields are
allowed (adding a field is backwards compatible); removing or retyping one needs a new schema_version.
"""

from __future__ import annotations

from strangler_sync import events
from strangler_sync.errors import SchemaError

NoneType = type(None)
_INT = (int,)
_OPT_INT = (int, NoneType)
_STR = (str,)
_BOOL = (bool,)

_PRODUCT = {
    "required": {"id": _INT, "sku": _STR, "slug": _STR, "name": _STR, "price": _STR, "currency": _STR,
                 "is_active": _BOOL, "category_id": _OPT_INT},
    "optional": {"description": _STR, "images": (list,)},
}
_CATEGORY = {
    "required": {"id": _INT, "name": _STR, "slug": _STR, "parent_id": _OPT_INT},
    "optional": {"description": _STR},
}
_STOCK = {
    "required": {"product_id": _INT, "quantity_on_hand": _INT, "quantity_reserved": _INT},
    "optional": {},
}
_REVIEW = {
    "required": {"id": _INT, "product_id": _INT, "rating": _INT},
    # username and the owner's timestamps: what the reviews service shows (users live in the monolith)
    "optional": {"user_id": _OPT_INT, "title": _STR, "body": _STR, "status": _STR, "username": _STR,
                 "created_at": _STR, "updated_at": _STR},
}
_DELETED = {"required": {"id": _INT}, "optional": {}}

SCHEMAS: dict[tuple[str, int], dict] = {
    (events.PRODUCT_CREATED, 1): _PRODUCT,
    (events.PRODUCT_UPDATED, 1): _PRODUCT,
    (events.PRODUCT_SNAPSHOT, 1): _PRODUCT,
    (events.PRODUCT_DELETED, 1): _DELETED,
    (events.CATEGORY_CREATED, 1): _CATEGORY,
    (events.CATEGORY_UPDATED, 1): _CATEGORY,
    (events.CATEGORY_SNAPSHOT, 1): _CATEGORY,
    (events.CATEGORY_DELETED, 1): _DELETED,
    (events.STOCK_CHANGED, 1): _STOCK,
    (events.STOCK_SNAPSHOT, 1): _STOCK,
    (events.REVIEW_CREATED, 1): _REVIEW,
    (events.REVIEW_UPDATED, 1): _REVIEW,
    (events.REVIEW_SNAPSHOT, 1): _REVIEW,
    (events.REVIEW_DELETED, 1): _DELETED,
}


def _type_names(types: tuple) -> str:
    return " or ".join("null" if t is NoneType else t.__name__ for t in types)


def payload_validate(*, event_type: str, schema_version: int, payload) -> None:
    """Raise SchemaError unless payload matches the registered schema (unknown pairs are errors too)."""
    schema = SCHEMAS.get((event_type, schema_version))
    if schema is None:
        raise SchemaError(
            f"no schema for event {event_type!r} version {schema_version}",
            details={"event_type": event_type, "schema_version": schema_version},
        )
    if not isinstance(payload, dict):
        raise SchemaError("payload must be a JSON object", details={"event_type": event_type})
    problems: dict[str, str] = {}
    for name, types in schema["required"].items():
        if name not in payload:
            problems[name] = "required"
        elif not _is_instance(payload[name], types):
            problems[name] = f"expected {_type_names(types)}"
    for name, types in schema["optional"].items():
        if name in payload and not _is_instance(payload[name], types):
            problems[name] = f"expected {_type_names(types)}"
    if problems:
        raise SchemaError(f"payload of {event_type!r} v{schema_version} is invalid", details=problems)


def _is_instance(value, types: tuple) -> bool:
    # bool is an int subclass: an int field must not accept True/False.
    if isinstance(value, bool) and bool not in types:
        return False
    return isinstance(value, types)
