"""inventory.selectors: one product's stock, several products' stock, availability map."""

from __future__ import annotations

import pytest

from monolith.inventory import selectors, services
from servicekit.errors import NotFound

pytestmark = pytest.mark.django_db


def test_stock_get_of_a_product_without_a_row_is_all_zero(products):
    item = selectors.stock_get(product_id=products["c"].id)
    assert (item.quantity_on_hand, item.quantity_reserved, item.quantity_available) == (0, 0, 0)


def test_stock_get_of_an_unknown_product_is_not_found(db):
    with pytest.raises(NotFound):
        selectors.stock_get(product_id=424242)


def test_stock_list_fills_in_missing_rows_and_skips_unknown_products(products):
    services.stock_reserve(reference="R", lines=[(products["a"].id, 4)])
    ids = [products["c"].id, products["a"].id, 999_999]
    rows = selectors.stock_list(product_ids=ids)
    assert [(r.product_id, r.quantity_available) for r in rows] == [(products["a"].id, 6), (products["c"].id, 0)]


def test_available_map_subtracts_reservations(products):
    services.stock_reserve(reference="R", lines=[(products["b"].id, 2)])
    assert selectors.stock_available_map(product_ids=[products["a"].id, products["b"].id]) == {
        products["a"].id: 10,
        products["b"].id: 0,
    }
