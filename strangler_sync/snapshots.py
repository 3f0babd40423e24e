"""Canonical row state: the payload of snapshot/state events (verify hashes rows in ``checksums``).

Both sides (owner and follower) bind the same ``Aggregate`` declaration to their own model with ``fields``
(canonical name -> their own model attribute), so rows hash equal whatever the column names are. The
payload is ``snapshot(instance)`` when declared (a callable, its dotted path, or a DRF serializer class),
else the canonical ``fields``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal

from django.apps import apps
from django.db import models
from django.utils.module_loading import import_string
from rest_framework.serializers import BaseSerializer

from strangler_sync.aggregates import Aggregate
from strangler_sync.conf import sync_settings
from strangler_sync.errors import UnknownAggregate

_PLAIN = frozenset({str, int, bool, float, type(None)})


def canonical_value(value):
    """A JSON-safe value that compares equal across databases (Decimal as its string, datetimes in UTC)."""
    if type(value) in _PLAIN:  # most columns: skip the isinstance chain (verify hashes millions of values)
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [canonical_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): canonical_value(v) for k, v in value.items()}
    return value


def aggregate_model(config: Aggregate) -> type[models.Model]:
    if config.model is None:
        raise UnknownAggregate(
            f"aggregate {config.name!r} is declared without a model here (this project only follows its events)",
            details={"aggregate": config.name},
        )
    return apps.get_model(config.model)


def snapshot_function(config: Aggregate) -> Callable[[models.Model], dict] | None:
    """The declared snapshot as ``fn(instance) -> payload`` (None: the canonical fields are the payload)."""
    snapshot = config.snapshot
    if snapshot is None:
        return None
    if isinstance(snapshot, str):
        snapshot = import_string(snapshot)
    if isinstance(snapshot, type) and issubclass(snapshot, BaseSerializer):
        serializer = snapshot
        return lambda instance: canonical_value(dict(serializer(instance).data))
    return snapshot


def aggregate_payload(*, aggregate_type: str, instance: models.Model) -> dict:
    """The full-state payload of one row: the declared snapshot, else the canonical fields."""
    config = sync_settings().aggregate(aggregate_type)
    snapshot = snapshot_function(config)
    if snapshot is not None:
        return snapshot(instance)
    return {name: canonical_value(getattr(instance, attr)) for name, attr in config.fields.items()}


def canonical_row(*, config: Aggregate, values: dict) -> dict:
    """The canonical dict of a row given its model attribute values (as returned by .values())."""
    return {name: canonical_value(values[attr]) for name, attr in config.fields.items()}

