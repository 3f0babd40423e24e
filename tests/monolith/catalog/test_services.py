"""catalog.services: validation, uniqueness (409), slugs, tree rules, deactivate/delete."""

from __future__ import annotations

from decimal import Decimal

import pytest

from monolith.catalog import services
from monolith.catalog.models import Category, Product
from monolith.inventory.models import Reservation
from servicekit.errors import Conflict, InvalidInput
from tests.monolith.catalog.factories import make_category, make_product

pytestmark = pytest.mark.django_db


def test_product_create_returns_saved_product_with_derived_slug():
    category = make_category("Tools")
    product = services.product_create(sku="HAM-1", name="Claw Hammer", price="19.5", category=category)
    assert product.pk is not None
    stored = Product.objects.get(pk=product.pk)
    assert (stored.slug, stored.price, stored.currency, stored.category_id) == (
        "claw-hammer", Decimal("19.50"), "USD", category.id,
    )  # fmt: skip


def test_product_create_makes_derived_slugs_unique():
    first = services.product_create(sku="A-1", name="Same Name", price="1.00")
    second = services.product_create(sku="A-2", name="Same Name", price="1.00")
    assert (first.slug, second.slug) == ("same-name", "same-name-2")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"price": "-1"}, "price"),
        ({"price": "abc"}, "price"),
        ({"price": "1.005"}, "price"),
        ({"price": "NaN"}, "price"),
        ({"name": "   "}, "name"),
        ({"sku": "has space"}, "sku"),
        ({"currency": "usd"}, "currency"),
        ({"images": ["not a url"]}, "images"),
        ({"images": "https://x.test/a.png"}, "images"),
        ({"slug": "Not A Slug"}, "slug"),
    ],
)
def test_product_create_rejects_invalid_fields(kwargs, field):
    arguments = {"sku": "OK-1", "name": "Fine", "price": "1.00", **kwargs}
    with pytest.raises(InvalidInput) as caught:
        services.product_create(**arguments)
    assert field in caught.value.details
    assert not Product.objects.exists()


def test_product_create_accepts_absolute_and_site_relative_image_urls():
    product = services.product_create(
        sku="IMG-1", name="Pictured", price="2.00", images=["https://cdn.example.com/a.png", "/static/b.svg"]
    )
    assert product.images == ["https://cdn.example.com/a.png", "/static/b.svg"]


def test_duplicate_sku_or_slug_is_a_conflict():
    services.product_create(sku="DUP-1", name="One", price="1.00", slug="one")
    with pytest.raises(Conflict):
        services.product_create(sku="DUP-1", name="Two", price="1.00")
    with pytest.raises(Conflict):
        services.product_create(sku="DUP-2", name="Two", price="1.00", slug="one")
    assert Product.objects.count() == 1


def test_product_update_changes_only_given_fields():
    product = make_product("Kettle", price="30.00")
    updated = services.product_update(product=product, data={"price": Decimal("27.99"), "name": "Steel Kettle"})
    stored = Product.objects.get(pk=product.pk)
    assert (stored.name, stored.price, stored.slug, stored.sku) == ("Steel Kettle", Decimal("27.99"), product.slug,
                                                                    product.sku)  # fmt: skip
    assert updated.updated_at >= product.updated_at


def test_product_update_rejects_unknown_fields_and_taken_sku():
    make_product(sku="TAKEN-1")
    product = make_product(sku="MINE-1")
    with pytest.raises(InvalidInput):
        services.product_update(product=product, data={"id": 99})
    with pytest.raises(Conflict):
        services.product_update(product=product, data={"sku": "TAKEN-1"})
    assert Product.objects.get(pk=product.pk).sku == "MINE-1"


def test_product_deactivate_keeps_the_row():
    product = make_product()
    services.product_deactivate(product=product)
    assert Product.objects.get(pk=product.pk).is_active is False


def test_product_delete_refuses_products_with_reservations():
    product = make_product(stock=5)
    Reservation.objects.create(reference="ORD-1", product=product, quantity=1)
    with pytest.raises(Conflict):
        services.product_delete(product=product)
    assert Product.objects.filter(pk=product.pk).exists()


def test_product_delete_removes_product_and_its_stock():
    product = make_product(stock=5)
    deleted = services.product_delete(product=product)
    assert deleted.id == product.id
    assert not Product.objects.filter(pk=product.pk).exists()


def test_category_rules():
    root = make_category("Root")
    child = make_category("Child", parent=root)
    assert child.slug == "child"
    with pytest.raises(Conflict):
        services.category_create(name="Again", slug="child")
    with pytest.raises(InvalidInput):  # a category cannot move below its own descendant
        services.category_update(category=root, data={"parent": child})
    with pytest.raises(Conflict):  # has children
        services.category_delete(category=root)
    moved = services.category_update(category=child, data={"parent": None, "name": "Former Child"})
    assert (moved.parent_id, moved.name) == (None, "Former Child")


def test_category_delete_leaves_products_uncategorised():
    category = make_category("Temporary")
    product = make_product(category=category)
    services.category_delete(category=category)
    assert not Category.objects.filter(pk=category.pk).exists()
    assert Product.objects.get(pk=product.pk).category_id is None
