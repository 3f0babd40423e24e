"""A first copy (the dump import) keeps the version guard: what the consumer applied is never overwritten by an
older dump, while rows no event has reached yet, or older than the dump's version, are loaded."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from extracted import events
from extracted.catalog.products.bootstrap import catalog_load_dump
from extracted.catalog.products.models import Product
from strangler_sync.consumer import APPLIED, STALE
from strangler_sync.models import AppliedVersion
from tests.extracted.catalog.test_bootstrap import dump
from tests.extracted.catalog.test_sync_handlers import apply, envelope, product_payload

pytestmark = pytest.mark.django_db


def rake(price: str) -> dict:
    return product_payload(500, sku="RAKE-1", slug="rake", name="Rake", price=price, currency="EUR")


def versions(**by_id: int) -> list[dict]:
    return [{"model": "strangler_sync.aggregateversion", "pk": n, "fields": {
        "aggregate_type": "product", "aggregate_id": aggregate_id.removeprefix("p"), "version": version}}
        for n, (aggregate_id, version) in enumerate(by_id.items(), start=1)]


def test_an_older_dump_never_overwrites_a_newer_applied_event(tmp_path):
    catalog_load_dump(records=dump(price="19.99"))  # the first copy
    assert apply(envelope(events.PRODUCT_UPDATED, 500, 5, rake("42.00"))) == APPLIED  # live change, v5
    # a dump taken before that change (price 19.99), without versions and with them (v3)
    path = tmp_path / "old.json"
    path.write_text(json.dumps(dump(price="19.99")))
    call_command("catalog_import", str(path))
    result = catalog_load_dump(records=versions(p500=3) + dump(price="19.99"))
    assert str(Product.objects.get(id=500).price) == "42.00"
    assert result.products == 0 and result.kept_newer == 1
    assert AppliedVersion.objects.get(aggregate_type="product", aggregate_id="500").version == 5


def test_a_dump_newer_than_the_applied_version_is_loaded_and_older_events_become_stale():
    catalog_load_dump(records=dump(price="19.99"))
    assert apply(envelope(events.PRODUCT_UPDATED, 500, 2, rake("20.00"))) == APPLIED
    result = catalog_load_dump(records=versions(p500=7) + dump(price="70.00"))
    assert result.products == 1 and str(Product.objects.get(id=500).price) == "70.00"
    # events the dump already contains arrive late: dropped by the guard, not applied over the dump
    assert apply(envelope(events.PRODUCT_UPDATED, 500, 6, rake("60.00"))) == STALE
    assert str(Product.objects.get(id=500).price) == "70.00"
    assert apply(envelope(events.PRODUCT_UPDATED, 500, 8, rake("80.00"))) == APPLIED


def test_rows_no_event_reached_load_as_before():
    result = catalog_load_dump(records=dump(price="19.99"))
    assert (result.categories, result.products, result.kept_newer) == (2, 1, 0)
    assert catalog_load_dump(records=dump(price="5.00")).products == 1  # no version known: still reloadable
    assert str(Product.objects.get(id=500).price) == "5.00"
