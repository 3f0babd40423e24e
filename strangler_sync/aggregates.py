"""Aggregate declarations: the public API through which a project tells the data plane what it syncs.

An aggregate is declared once, as a module-level :class:`Aggregate`, by the project that owns it::

    # myshop/events.py
    from strangler_sync.aggregates import Aggregate, Schema

    INVOICE = Aggregate(
        name="invoice",
        key="id", key_type=uuid.UUID,                 # int (default), str or uuid.UUID
        schemas={1: Schema(required={"id": str, "total": str, "paid": bool},
                           optional={"note": (str, None)})},
        model="billing.Invoice",                      # this project's model (omit to only follow the events)
        fields=["id", "total", "paid", "note"],       # canonical name -> model attribute (a list: same names)
        snapshot=None,                                # or a callable / dotted path fn(instance) -> payload,
                                                      # or a DRF serializer class (its .data is the payload)
        capture="explicit",                           # or "automatic" (triggers; see strangler_sync.capture)
    )
    INVOICE_CREATED = INVOICE.event("created")         # "invoice.created": the project owns its constants

and listed in the project's settings (the registry)::

    STRANGLER_SYNC = {"AGGREGATES": ["myshop.events.INVOICE", ...]}

Why a setting and not ``register()`` from ``AppConfig.ready``: Django's own pluggable lists (MIDDLEWARE,
AUTHENTICATION_BACKENDS) are dotted paths in settings, resolved lazily, so ``override_settings`` can swap
the registry in a test and a system check can report a bad entry with its path. A list item may also be an
``Aggregate`` object itself.

Event types are derived from the declaration: ``<name>.<action>`` for each of ``actions`` (default
created/updated/deleted) plus ``<name>.snapshot`` (backfill and repair). Every action except ``deleted``
carries the full state and is checked against ``schemas[schema_version]``; ``deleted`` carries only the key
(``{key: value}``). A follower that holds the aggregate in another model re-binds the same declaration to
it with :meth:`Aggregate.bind`, so both sides validate against one contract.

Keys: ``key_type`` int keys are bucketed by id range for verify (and hashed in SQL on PostgreSQL); UUID and
str keys by a stable hash of their text (see ``strangler_sync.checksums``).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

DELETED = "deleted"
SNAPSHOT = "snapshot"
KEY_TYPES = (int, str, uuid.UUID)
CAPTURE_MODES = ("explicit", "automatic")
_JSON_TYPES = frozenset({int, str, bool, float, list, dict, type(None)})


def _types(value) -> tuple:
    items = value if isinstance(value, tuple) else (value,)
    return tuple(type(None) if item is None else item for item in items)


@dataclass(frozen=True)
class Schema:
    """One payload schema version: field name -> JSON type (or a tuple of them; ``None`` allows null).

    Extra payload fields are allowed (adding one is backwards compatible); removing or retyping one
    needs a new schema version.
    """

    required: Mapping[str, object] = field(default_factory=dict)
    optional: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self):
        for part in ("required", "optional"):
            normalized = {name: _types(types) for name, types in dict(getattr(self, part)).items()}
            for name, types in normalized.items():
                unknown = [t for t in types if t not in _JSON_TYPES]
                if unknown:
                    raise TypeError(f"schema field {name!r}: {unknown[0]!r} is not a JSON type "
                                    f"(int, str, bool, float, list, dict or None)")
            object.__setattr__(self, part, normalized)


@dataclass(frozen=True)
class Aggregate:
    """What the data plane needs to know about one aggregate (see the module docstring)."""

    name: str
    schemas: Mapping[int, Schema]
    key: str = "id"
    key_type: type = int
    actions: tuple[str, ...] = ("created", "updated", DELETED)
    model: str | None = None
    fields: Sequence[str] | Mapping[str, str] = ()
    snapshot: str | Callable | type | None = None
    capture: str = "explicit"  # or "automatic": database triggers write the outbox row (strangler_sync.capture)

    def __post_init__(self):
        if self.capture not in CAPTURE_MODES:
            raise ValueError(f"aggregate {self.name!r}: capture must be one of {', '.join(CAPTURE_MODES)}, "
                             f"not {self.capture!r}")
        if not self.name or "." in self.name or "*" in self.name or "#" in self.name:
            raise ValueError(f"aggregate name {self.name!r} must be non-empty without '.', '*' or '#'")
        if self.key_type not in KEY_TYPES:
            raise TypeError(f"aggregate {self.name!r}: key_type must be int, str or uuid.UUID")
        if not self.schemas or any(not isinstance(v, int) or not isinstance(s, Schema)
                                   for v, s in self.schemas.items()):
            raise TypeError(f"aggregate {self.name!r}: schemas must map version numbers to Schema objects")
        if SNAPSHOT in self.actions:
            raise ValueError(f"aggregate {self.name!r}: {SNAPSHOT!r} is implied, do not list it in actions")
        fields = self.fields if isinstance(self.fields, Mapping) else {f: f for f in self.fields}
        object.__setattr__(self, "fields", dict(fields) or {self.key: self.key})
        object.__setattr__(self, "schemas", dict(self.schemas))
        object.__setattr__(self, "actions", tuple(self.actions))

    def event(self, action: str) -> str:
        """The event type of one action, e.g. ``"product.updated"``."""
        if action != SNAPSHOT and action not in self.actions:
            raise ValueError(f"aggregate {self.name!r} has no action {action!r} (it has {', '.join(self.actions)})")
        return f"{self.name}.{action}"

    @property
    def event_types(self) -> tuple[str, ...]:
        return tuple(self.event(action) for action in (*self.actions, SNAPSHOT))

    @property
    def id_field(self) -> str:
        """The model attribute holding the key."""
        return self.fields.get(self.key, self.key)

    @property
    def integer_keys(self) -> bool:
        return self.key_type is int

    def schema(self, *, action: str, version: int) -> Schema | None:
        """The payload schema of an action at a schema version (None: not declared)."""
        if version not in self.schemas or (action != SNAPSHOT and action not in self.actions):
            return None
        if action == DELETED:
            return Schema(required={self.key: int if self.integer_keys else str})
        return self.schemas[version]

    def key_value(self, text: str):
        """The typed key of an envelope's ``aggregate_id`` (always text on the wire)."""
        return self.key_type(text)

    def key_json(self, value):
        """The key as it appears in a payload: an int for int keys, else its text."""
        return int(value) if self.integer_keys else str(value)

    def bind(self, **changes) -> Aggregate:
        """The same contract bound to another project's model: ``PRODUCT.bind(model=..., fields=...)``."""
        return dataclasses.replace(self, **changes)


def aggregates_registered() -> dict[str, Aggregate]:
    """This project's aggregates (``STRANGLER_SYNC["AGGREGATES"]``), by name."""
    from strangler_sync.conf import sync_settings

    return dict(sync_settings().aggregates)


def aggregate_get(*, name: str) -> Aggregate:
    """The declared aggregate, or UnknownAggregate (404 ``unknown_aggregate``)."""
    from strangler_sync.conf import sync_settings

    return sync_settings().aggregate(name)


def aggregate_of_event(*, event_type: str) -> tuple[Aggregate | None, str]:
    """(the declared aggregate of an event type or None, the action)."""
    from strangler_sync.conf import sync_settings

    name, _, action = event_type.rpartition(".")
    return sync_settings().aggregates.get(name), action
