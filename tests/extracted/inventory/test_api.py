"""The inventory service's API: the monolith's stock/reservation rules, owner-only writes, events per change."""

from __future__ import annotations

import pytest

from extracted.inventory.stock.models import Reservation, StockItem
from strangler_sync.models import OutboxEvent

pytestmark = pytest.mark.django_db


def _reserve(client, reference, lines):
    return client.post("/api/reservations/", {"reference": reference, "lines": lines}, format="json")


def _stock(pid):
    item = StockItem.objects.get(product_id=pid)
    return item.quantity_on_hand, item.quantity_reserved


def test_reads_need_no_ownership(api, shelf):
    assert api.get("/api/stock/1/").json() == {
        "product": 1, "quantity_on_hand": 10, "quantity_reserved": 0, "quantity_available": 10}
    assert api.get("/api/stock/3/").json()["quantity_on_hand"] == 0  # known product, no stock yet
    missing = api.get("/api/stock/99/")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    listed = api.get("/api/stock/?product=4,1,99").json()
    assert [row["product"] for row in listed["results"]] == [1, 4] and listed["count"] == 2
    assert api.get("/api/stock/?product=x").json()["error"]["code"] == "invalid"
    assert api.get("/api/stock/").json()["count"] == 3  # every row, paginated


def test_writes_are_refused_before_the_flip(token_api, shelf):
    response = _reserve(token_api, "ORD-1", [{"product": 1, "quantity": 1}])
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_owner"
    assert token_api.put("/api/stock/1/", {"quantity_on_hand": 5}, format="json").status_code == 409
    assert not Reservation.objects.exists() and not OutboxEvent.objects.exists()


def test_anonymous_and_non_staff_writes_are_forbidden(api, shelf, stock_owned):
    assert _reserve(api, "ORD-1", [{"product": 1, "quantity": 1}]).status_code == 403
    api.credentials(HTTP_AUTHORIZATION="Bearer wrong-token")
    wrong = _reserve(api, "ORD-1", [{"product": 1, "quantity": 1}])
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "authentication_failed"
    assert not Reservation.objects.exists()


def test_reserve_confirm_is_idempotent_and_emits_full_state(token_api, shelf, stock_owned):
    first = _reserve(token_api, "ORD-1", [{"product": 2, "quantity": 1}, {"product": 1, "quantity": 4}])
    assert first.status_code == 201
    assert first.json() == {"reference": "ORD-1", "lines": [
        {"product": 1, "quantity": 4, "status": "active"}, {"product": 2, "quantity": 1, "status": "active"}]}
    again = _reserve(token_api, "ORD-1", [{"product": 1, "quantity": 4}, {"product": 2, "quantity": 1}])
    assert again.status_code == 201 and again.json() == first.json()
    assert _stock(1) == (10, 4) and _stock(2) == (3, 1)
    confirmed = token_api.post("/api/reservations/ORD-1/confirm/")
    assert confirmed.status_code == 200 and {line["status"] for line in confirmed.json()["lines"]} == {"confirmed"}
    assert token_api.post("/api/reservations/ORD-1/confirm/").status_code == 200  # a retry is a no-op
    assert _stock(1) == (6, 0) and _stock(2) == (2, 0)
    events = list(OutboxEvent.objects.filter(aggregate_id="1").order_by("version"))
    assert [e.event_type for e in events] == ["stock.changed", "stock.changed"]
    assert [e.version for e in events] == [1, 2]
    assert events[-1].payload == {"product_id": 1, "quantity_on_hand": 6, "quantity_reserved": 0}
    assert events[-1].origin == "inventory"
    released = token_api.post("/api/reservations/ORD-1/release/")
    assert released.status_code == 409 and released.json()["error"]["code"] == "conflict"


def test_out_of_stock_reserves_nothing_and_names_every_short_product(token_api, shelf, stock_owned):
    response = _reserve(token_api, "ORD-2", [{"product": 1, "quantity": 11}, {"product": 4, "quantity": 1},
                                             {"product": 2, "quantity": 1}])
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "out_of_stock"
    assert error["details"]["products"] == [
        {"product": 1, "requested": 11, "available": 10}, {"product": 4, "requested": 1, "available": 0}]
    assert _stock(1) == (10, 0) and _stock(2) == (3, 0)
    assert not Reservation.objects.exists() and not OutboxEvent.objects.exists()


def test_release_and_return_undo_whatever_happened(token_api, shelf, stock_owned):
    _reserve(token_api, "ORD-3", [{"product": 1, "quantity": 2}])
    assert token_api.post("/api/reservations/ORD-3/release/").json()["lines"][0]["status"] == "released"
    assert token_api.post("/api/reservations/ORD-3/release/").status_code == 200
    assert _stock(1) == (10, 0)
    assert token_api.post("/api/reservations/ORD-3/confirm/").json()["error"]["code"] == "conflict"
    _reserve(token_api, "ORD-4", [{"product": 1, "quantity": 3}])
    token_api.post("/api/reservations/ORD-4/confirm/")
    assert _stock(1) == (7, 0)
    returned = token_api.post("/api/reservations/ORD-4/return/")
    assert returned.json()["lines"][0]["status"] == "returned"
    assert token_api.post("/api/reservations/ORD-4/return/").status_code == 200
    assert _stock(1) == (10, 0)
    unknown = token_api.post("/api/reservations/NOPE/return/")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"


def test_bad_input_gets_the_monolith_errors(token_api, staff_api, shelf, stock_owned):
    assert _reserve(token_api, "ORD-5", []).json()["error"]["code"] == "invalid"
    assert _reserve(token_api, "ORD-5", [{"product": 1, "quantity": 0}]).status_code == 400
    assert _reserve(token_api, "x" * 65, [{"product": 1, "quantity": 1}]).status_code == 400
    assert staff_api.put("/api/stock/1/", {"quantity_on_hand": -1}, format="json").status_code == 400
    below = staff_api.put("/api/stock/4/", {"quantity_on_hand": 4}, format="json")
    assert below.status_code == 409
    assert below.json()["error"]["details"] == {"product": 4, "quantity_reserved": 5}
    assert staff_api.put("/api/stock/99/", {"quantity_on_hand": 1}, format="json").status_code == 404
    assert staff_api.put("/api/stock/3/", {"quantity_on_hand": 7}, format="json").json()["quantity_available"] == 7


def test_expiry_releases_reservations_no_checkout_finished(token_api, shelf, stock_owned):
    from datetime import timedelta

    from extracted.inventory.stock.services import reservations_expire_stale

    _reserve(token_api, "ORD-OLD", [{"product": 1, "quantity": 2}])
    _reserve(token_api, "ORD-NEW", [{"product": 1, "quantity": 1}])
    Reservation.objects.filter(reference="ORD-OLD").update(created_at=Reservation.objects.get(
        reference="ORD-OLD").created_at - timedelta(hours=1))
    assert reservations_expire_stale(older_than=timedelta(minutes=15)) == ["ORD-OLD"]
    assert _stock(1) == (10, 1)
    assert reservations_expire_stale(older_than=timedelta(minutes=15)) == []
