"""catalog.selectors: filters (category incl. descendants, price, text, active), sorting, lookups, tree."""

from __future__ import annotations

from decimal import Decimal

import pytest

from monolith.catalog import selectors
from servicekit.errors import InvalidInput, NotFound

pytestmark = pytest.mark.django_db


def skus(products) -> list[str]:
    return [p.sku for p in products]


def test_default_lists_active_products_by_name(shelf):
    assert skus(selectors.product_list()) == ["KNF-8", "LAMP-1", "PAN-1", "HOSE-20"]


def test_category_filter_includes_descendants(shelf):
    assert set(skus(selectors.product_list(category="home"))) == {"LAMP-1", "PAN-1", "KNF-8"}
    assert set(skus(selectors.product_list(category="kitchen"))) == {"PAN-1", "KNF-8"}
    assert skus(selectors.product_list(category="knives")) == ["KNF-8"]


def test_unknown_category_is_not_found(shelf):
    with pytest.raises(NotFound) as caught:
        selectors.product_list(category="nope")
    assert "category" in caught.value.details


def test_price_range_is_inclusive(shelf):
    result = selectors.product_list(min_price=Decimal("12.50"), max_price=Decimal("40.00"), ordering="price")
    assert skus(result) == ["HOSE-20", "LAMP-1", "PAN-1"]


def test_min_above_max_is_invalid(shelf):
    with pytest.raises(InvalidInput):
        selectors.product_list(min_price=Decimal("10"), max_price=Decimal("5"))


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("lamp", ["LAMP-1"]),  # name, case-insensitive; the inactive Old Lamp is hidden
        ("knf", ["KNF-8"]),  # sku
        ("CAST IRON", ["PAN-1"]),  # description, both terms must match
        ("steel blade", ["KNF-8"]),
        ("steel lamp", []),
        ("", ["KNF-8", "LAMP-1", "PAN-1", "HOSE-20"]),
    ],
)
def test_text_search(shelf, q, expected):
    assert skus(selectors.product_list(q=q)) == expected


def test_is_active_filter(shelf):
    assert skus(selectors.product_list(is_active=False)) == ["LAMP-0"]
    assert len(selectors.product_list(is_active=None)) == 5


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [
        ("name", ["KNF-8", "LAMP-1", "PAN-1", "HOSE-20"]),
        ("-name", ["HOSE-20", "PAN-1", "LAMP-1", "KNF-8"]),
        ("price", ["HOSE-20", "LAMP-1", "PAN-1", "KNF-8"]),
        ("-price", ["KNF-8", "PAN-1", "LAMP-1", "HOSE-20"]),
        ("newest", ["HOSE-20", "KNF-8", "PAN-1", "LAMP-1"]),
    ],
)
def test_sorting(shelf, ordering, expected):
    assert skus(selectors.product_list(ordering=ordering)) == expected


def test_unknown_ordering_is_invalid(shelf):
    with pytest.raises(InvalidInput):
        selectors.product_list(ordering="popularity")


def test_product_get_by_id_or_slug(shelf):
    lamp = shelf["lamp"]
    assert selectors.product_get(product_id=lamp.id) == lamp
    assert selectors.product_get(slug=lamp.slug) == lamp
    with pytest.raises(NotFound):
        selectors.product_get(product_id=shelf["old"].id, active_only=True)
    with pytest.raises(NotFound):
        selectors.product_get(slug="missing")


def test_category_tree_and_descendants(tree):
    roots = selectors.category_tree()
    assert [n.category.slug for n in roots] == ["garden", "home"]
    home = roots[1]
    assert [n.category.slug for n in home.children] == ["kitchen"]
    assert [n.category.slug for n in home.children[0].children] == ["knives"]
    assert selectors.category_descendant_ids(category=tree["home"]) == sorted(
        [tree["home"].id, tree["kitchen"].id, tree["knives"].id]
    )
    assert [c.slug for c in selectors.category_ancestors(category=tree["knives"])] == ["home", "kitchen", "knives"]


@pytest.mark.postgres
def test_postgres_has_trigram_indexes_for_text_search(shelf):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'catalog_product' AND indexname LIKE '%trgm'"
        )
        names = {row[0] for row in cursor.fetchall()}
    assert names == {"catalog_product_name_trgm", "catalog_product_sku_trgm", "catalog_product_description_trgm"}
    assert skus(selectors.product_list(q="CAST iron")) == ["PAN-1"]  # same results with the indexes in place
