"""Canonical row state: the payload of snapshot/state events (verify hashes rows in ``checksums``).

Both sides (owner and follower) describe the same aggregate with ``AGGREGATES[name]["FIELDS"]``
(canonical name -> their own model attribute), so rows hash equal whatever the column names are.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

from django.apps import apps
from django.db import models
from django.utils.module_loading import import_string

from strangler_sync.conf import AggregateConfig, sync_settings

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


def aggregate_model(config: AggregateConfig) -> type[models.Model]:
    return apps.get_model(config.model_label)


def aggregate_payload(*, aggregate_type: str, instance: models.Model) -> dict:
    """The full-state payload of one row: the configured SNAPSHOT function, else the canonical FIELDS."""
    config = sync_settings().aggregate(aggregate_type)
    if config.snapshot_path:
        return import_string(config.snapshot_path)(instance)
    return {name: canonical_value(getattr(instance, attr)) for name, attr in config.fields.items()}


def canonical_row(*, config: AggregateConfig, values: dict) -> dict:
    """The canonical dict of a row given its model attribute values (as returned by .values())."""
    return {name: canonical_value(values[attr]) for name, attr in config.fields.items()}

