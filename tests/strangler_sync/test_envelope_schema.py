"""strangler_sync/event-envelope.schema.json (the event envelope's reference page is generated from it) says what
the relay publishes and what the consumer requires: both are checked here against the code."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from django.db import transaction

from monolith import events
from strangler_sync.consumer import ENVELOPE_FIELDS, event_parse
from strangler_sync.errors import SchemaError
from strangler_sync.relay import event_envelope, outbox_claim
from strangler_sync.services import event_publish
from tests.strangler_sync.conftest import product_payload

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "strangler_sync" / "event-envelope.schema.json")
                    .read_text(encoding="utf-8"))
JSON_TYPES = {str: "string", int: "integer", dict: "object"}

# product events published by hand: the storefront's product is captured by triggers otherwise
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("explicit_product")]


def validator() -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    return jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())


def published() -> dict:
    with transaction.atomic():
        row = event_publish(event_type=events.PRODUCT_UPDATED, aggregate_type="product", aggregate_id=5,
                            payload=product_payload(5))
    return event_envelope(row)


def test_what_the_relay_publishes_validates_against_the_schema():
    envelope = published()
    validator().validate(envelope)
    with transaction.atomic():
        [claimed] = outbox_claim(limit=10)  # the relay's fast path builds the JSON itself
    validator().validate(json.loads(claimed.body))
    validator().validate({**envelope, "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})


def test_the_schema_requires_what_the_consumer_requires_with_the_same_types():
    assert set(SCHEMA["required"]) == set(ENVELOPE_FIELDS)
    for key, kind in ENVELOPE_FIELDS.items():
        assert SCHEMA["properties"][key]["type"] == JSON_TYPES[kind], key


@pytest.mark.parametrize("key", sorted(ENVELOPE_FIELDS))
def test_an_envelope_without_a_required_key_is_refused_by_both(key):
    envelope = published()
    event_parse(envelope=envelope)
    del envelope[key]
    assert not validator().is_valid(envelope)
    with pytest.raises(SchemaError):
        event_parse(envelope=envelope)
