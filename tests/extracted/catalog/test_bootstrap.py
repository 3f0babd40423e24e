"""Loading the monolith's dumpdata, and moving id allocation above the monolith's ids before owning writes."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from extracted.catalog.products import services
from extracted.catalog.products.bootstrap import catalog_load_dump, id_sequences_advance
from extracted.catalog.products.models import Category, Product
from servicekit.errors import InvalidInput

pytestmark = pytest.mark.django_db


def dump(*, price: str = "19.99") -> list[dict]:
    return [
        {"model": "catalog.category", "pk": 300, "fields": {
            "name": "Garden", "slug": "garden", "parent": None, "description": "",
            "created_at": "2026-01-02T03:04:05.678Z", "updated_at": "2026-01-02T03:04:05.678Z"}},
        {"model": "catalog.category", "pk": 301, "fields": {
            "name": "Tools", "slug": "tools", "parent": 300, "description": "Sharp",
            "created_at": "2026-01-02T03:04:05Z", "updated_at": "2026-01-03T00:00:00Z"}},
        {"model": "catalog.product", "pk": 500, "fields": {
            "sku": "RAKE-1", "slug": "rake", "name": "Rake", "description": "", "price": price, "currency": "EUR",
            "is_active": True, "images": ["/static/rake.png"], "category": 301,
            "created_at": "2026-01-04T00:00:00Z", "updated_at": "2026-01-05T00:00:00.123456Z"}},
        {"model": "inventory.stockitem", "pk": 1, "fields": {"product": 500, "quantity_on_hand": 3}},
    ]  # fmt: skip


def test_load_keeps_ids_and_timestamps_and_ignores_other_models():
    result = catalog_load_dump(records=dump())
    assert (result.categories, result.products) == (2, 1)
    rake = Product.objects.select_related("category__parent").get(id=500)
    assert (rake.sku, str(rake.price), rake.currency, rake.category.parent.slug) == ("RAKE-1", "19.99", "EUR", "garden")
    assert rake.updated_at.isoformat() == "2026-01-05T00:00:00.123456+00:00"
    assert Category.objects.get(id=300).created_at.isoformat() == "2026-01-02T03:04:05.678000+00:00"


def test_loading_again_updates_in_place():
    catalog_load_dump(records=dump())
    catalog_load_dump(records=dump(price="5.00"))
    assert Product.objects.count() == 1 and Category.objects.count() == 2
    assert str(Product.objects.get(id=500).price) == "5.00"


def test_import_command_reads_a_file_and_advances_ids(tmp_path, catalog_owned):
    path = tmp_path / "dump.json"
    path.write_text(json.dumps(dump()))
    call_command("catalog_import", str(path))
    created = services.product_create(sku="NEW-1", name="New", price="1.00")
    # above the monolith's largest id, never a clash (exactly 501 unless an earlier test moved a
    # PostgreSQL sequence further: sequences are not rolled back with the test transaction)
    assert created.id >= 501


def test_id_sequences_advance_with_headroom(catalog_owned):
    catalog_load_dump(records=dump())
    next_ids = id_sequences_advance(headroom=1000)
    assert next_ids["catalog_service_category"] >= 1302 and next_ids["catalog_service_product"] >= 1501
    assert services.category_create(name="Fresh").id == next_ids["catalog_service_category"]
    created = services.product_create(sku="NEW-2", name="New", price="1.00")
    assert created.id == next_ids["catalog_service_product"]
    # never moves backwards
    assert id_sequences_advance()["catalog_service_product"] == created.id + 1


def test_negative_headroom_is_refused():
    with pytest.raises(InvalidInput):
        id_sequences_advance(headroom=-1)


def test_a_dump_that_conflicts_with_local_rows_loads_nothing(tmp_path):
    catalog_load_dump(records=dump())
    clash = dump()
    clash[2]["pk"] = 501  # same SKU and slug under another id
    path = tmp_path / "clash.json"
    path.write_text(json.dumps(clash))
    with pytest.raises(CommandError, match="conflicts with rows already here"):
        call_command("catalog_import", str(path))
    assert list(Product.objects.values_list("id", flat=True)) == [500]
