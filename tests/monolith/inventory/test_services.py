"""inventory.services: set/adjust, all-or-nothing reservations, release/confirm/return, never negative."""

from __future__ import annotations

import pytest

from monolith.inventory import services
from monolith.inventory.errors import OutOfStock
from monolith.inventory.models import Reservation, StockItem
from servicekit.errors import Conflict, InvalidInput, NotFound

pytestmark = pytest.mark.django_db


def _stock(product) -> StockItem:
    return StockItem.objects.get(product=product)


def test_stock_set_creates_the_row_for_a_product_without_stock(products):
    item = services.stock_set(product_id=products["c"].id, quantity_on_hand=4)
    assert (item.quantity_on_hand, item.quantity_reserved) == (4, 0)
    assert _stock(products["c"]).quantity_on_hand == 4


@pytest.mark.parametrize("bad", [-1, "3", 2.5, True, None])
def test_stock_set_refuses_non_integers_and_negatives(products, bad):
    with pytest.raises(InvalidInput):
        services.stock_set(product_id=products["a"].id, quantity_on_hand=bad)
    assert _stock(products["a"]).quantity_on_hand == 10


def test_stock_set_unknown_product_is_not_found(db):
    with pytest.raises(NotFound):
        services.stock_set(product_id=999_999, quantity_on_hand=1)
    assert not StockItem.objects.exists()


def test_stock_set_cannot_go_below_what_is_reserved(products):
    services.stock_reserve(reference="R1", lines=[(products["a"].id, 6)])
    with pytest.raises(Conflict):
        services.stock_set(product_id=products["a"].id, quantity_on_hand=5)
    assert services.stock_set(product_id=products["a"].id, quantity_on_hand=6).quantity_available == 0


def test_stock_adjust_adds_and_removes_but_never_below_reserved(products):
    assert services.stock_adjust(product_id=products["b"].id, delta=3).quantity_on_hand == 5
    assert services.stock_adjust(product_id=products["b"].id, delta=-4).quantity_on_hand == 1
    with pytest.raises(Conflict):
        services.stock_adjust(product_id=products["b"].id, delta=-2)
    assert _stock(products["b"]).quantity_on_hand == 1


def test_reserve_holds_stock_and_records_one_reservation_per_product(products):
    a, b = products["a"], products["b"]
    reservations = services.stock_reserve(reference="ORD-1", lines=[(b.id, 2), (a.id, 3)])
    assert [(r.product_id, r.quantity, r.status) for r in reservations] == [(a.id, 3, "active"), (b.id, 2, "active")]
    assert (_stock(a).quantity_reserved, _stock(a).quantity_on_hand) == (3, 10)
    assert _stock(b).quantity_available == 0


def test_reserve_sums_repeated_lines_for_one_product(products):
    services.stock_reserve(reference="ORD-1", lines=[(products["a"].id, 2), (products["a"].id, 3)])
    assert Reservation.objects.get(reference="ORD-1").quantity == 5
    assert _stock(products["a"]).quantity_reserved == 5


def test_reserve_is_all_or_nothing_and_names_every_short_product(products):
    a, b, c = products["a"], products["b"], products["c"]
    with pytest.raises(OutOfStock) as caught:
        services.stock_reserve(reference="ORD-1", lines=[(a.id, 1), (b.id, 3), (c.id, 1)])
    assert caught.value.status_code == 409
    assert caught.value.details["products"] == [
        {"product": b.id, "requested": 3, "available": 2},
        {"product": c.id, "requested": 1, "available": 0},
    ]
    assert not Reservation.objects.exists()
    assert _stock(a).quantity_reserved == 0 and _stock(b).quantity_reserved == 0


def test_reserve_is_idempotent_per_reference(products):
    first = services.stock_reserve(reference="ORD-1", lines=[(products["a"].id, 4)])
    again = services.stock_reserve(reference="ORD-1", lines=[(products["a"].id, 4)])
    assert [r.pk for r in again] == [r.pk for r in first]
    assert _stock(products["a"]).quantity_reserved == 4


@pytest.mark.parametrize(
    "lines",
    [[], [(1,)], [("x", 1)], [(1, 0)], [(1, -2)], [(1, 1.5)], "junk"],
)
def test_reserve_refuses_malformed_lines(products, lines):
    with pytest.raises(InvalidInput):
        services.stock_reserve(reference="ORD-1", lines=lines)
    assert not Reservation.objects.exists()


def test_reserve_refuses_a_blank_reference(products):
    with pytest.raises(InvalidInput):
        services.stock_reserve(reference=" ", lines=[(products["a"].id, 1)])


def test_release_gives_stock_back_and_is_idempotent(products):
    services.stock_reserve(reference="ORD-1", lines=[(products["a"].id, 4), (products["b"].id, 1)])
    services.stock_release(reference="ORD-1")
    services.stock_release(reference="ORD-1")
    assert _stock(products["a"]).quantity_reserved == 0 and _stock(products["b"]).quantity_reserved == 0
    assert set(Reservation.objects.values_list("status", flat=True)) == {"released"}
    assert _stock(products["a"]).quantity_on_hand == 10


def test_release_of_an_unknown_reference_is_not_found(products):
    with pytest.raises(NotFound):
        services.stock_release(reference="nope")


def test_confirm_takes_the_goods_off_the_shelf_once(products):
    services.stock_reserve(reference="ORD-1", lines=[(products["a"].id, 4)])
    services.stock_confirm(reference="ORD-1")
    services.stock_confirm(reference="ORD-1")
    item = _stock(products["a"])
    assert (item.quantity_on_hand, item.quantity_reserved) == (6, 0)
    assert Reservation.objects.get().status == "confirmed"


def test_confirmed_cannot_be_released_and_released_cannot_be_confirmed(products):
    services.stock_reserve(reference="ORD-1", lines=[(products["a"].id, 1)])
    services.stock_confirm(reference="ORD-1")
    with pytest.raises(Conflict):
        services.stock_release(reference="ORD-1")
    services.stock_reserve(reference="ORD-2", lines=[(products["a"].id, 1)])
    services.stock_release(reference="ORD-2")
    with pytest.raises(Conflict):
        services.stock_confirm(reference="ORD-2")
    item = _stock(products["a"])
    assert (item.quantity_on_hand, item.quantity_reserved) == (9, 0)


def test_return_puts_confirmed_goods_back_once(products):
    services.stock_reserve(reference="ORD-1", lines=[(products["a"].id, 3)])
    services.stock_confirm(reference="ORD-1")
    services.stock_return(reference="ORD-1")
    services.stock_return(reference="ORD-1")
    item = _stock(products["a"])
    assert (item.quantity_on_hand, item.quantity_reserved) == (10, 0)
    assert Reservation.objects.get().status == "returned"


def test_a_released_reference_replays_rather_than_reserving_again(products):
    services.stock_reserve(reference="ORD-1", lines=[(products["a"].id, 3)])
    services.stock_release(reference="ORD-1")
    again = services.stock_reserve(reference="ORD-1", lines=[(products["a"].id, 3)])
    assert [r.status for r in again] == ["released"]
    assert _stock(products["a"]).quantity_reserved == 0
