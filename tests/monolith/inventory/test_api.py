"""Inventory JSON API: stock reads, staff stock writes, reservations with the one error shape."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from monolith.inventory.models import Reservation, StockItem

pytestmark = pytest.mark.django_db


def test_stock_detail(products):
    response = APIClient().get(f"/api/stock/{products['a'].id}/")
    assert response.status_code == 200
    assert response.json() == {
        "product": products["a"].id, "quantity_on_hand": 10, "quantity_reserved": 0, "quantity_available": 10,
    }


def test_stock_detail_of_an_unknown_product_is_a_json_404(db):
    response = APIClient().get("/api/stock/999999/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_stock_list_by_product_ids(products):
    response = APIClient().get(f"/api/stock/?product={products['b'].id},{products['a'].id}")
    assert response.status_code == 200
    assert [(r["product"], r["quantity_available"]) for r in response.json()["results"]] == [
        (products["a"].id, 10), (products["b"].id, 2),
    ]


def test_stock_list_without_ids_is_paginated(products):
    body = APIClient().get("/api/stock/").json()
    assert body["count"] == 2 and body["next"] is None
    assert [r["product"] for r in body["results"]] == [products["a"].id, products["b"].id]


@pytest.mark.parametrize("param", ["x", "1,,y", ","])
def test_stock_list_with_junk_ids_is_400(products, param):
    response = APIClient().get("/api/stock/", {"product": param})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_only_staff_set_stock(products, customer_api, staff_api):
    url = f"/api/stock/{products['c'].id}/"
    assert APIClient().put(url, {"quantity_on_hand": 5}, format="json").status_code in (401, 403)
    assert customer_api.put(url, {"quantity_on_hand": 5}, format="json").status_code == 403
    assert not StockItem.objects.filter(product=products["c"]).exists()
    response = staff_api.put(url, {"quantity_on_hand": 5}, format="json")
    assert response.status_code == 200
    assert response.json()["quantity_available"] == 5


def test_set_stock_below_reserved_is_409_and_negative_is_400(products, staff_api):
    staff_api.post("/api/reservations/", {"reference": "R1", "lines": [{"product": products["a"].id, "quantity": 4}]},
                   format="json")
    url = f"/api/stock/{products['a'].id}/"
    assert staff_api.put(url, {"quantity_on_hand": 3}, format="json").status_code == 409
    assert staff_api.put(url, {"quantity_on_hand": -1}, format="json").status_code == 400
    assert StockItem.objects.get(product=products["a"]).quantity_on_hand == 10


def test_reservation_lifecycle(products, staff_api):
    body = {"reference": "ORD-9", "lines": [{"product": products["a"].id, "quantity": 3}]}
    first = staff_api.post("/api/reservations/", body, format="json")
    assert first.status_code == 201
    assert first.json() == {"reference": "ORD-9", "lines": [{"product": products["a"].id, "quantity": 3,
                                                              "status": "active"}]}
    replay = staff_api.post("/api/reservations/", body, format="json")
    assert replay.status_code == 201 and replay.json() == first.json()
    assert StockItem.objects.get(product=products["a"]).quantity_reserved == 3

    confirmed = staff_api.post("/api/reservations/ORD-9/confirm/")
    assert confirmed.status_code == 200 and confirmed.json()["lines"][0]["status"] == "confirmed"
    assert staff_api.post("/api/reservations/ORD-9/release/").status_code == 409
    item = StockItem.objects.get(product=products["a"])
    assert (item.quantity_on_hand, item.quantity_reserved) == (7, 0)


def test_release_endpoint(products, staff_api):
    staff_api.post("/api/reservations/", {"reference": "R2", "lines": [{"product": products["b"].id, "quantity": 2}]},
                   format="json")
    response = staff_api.post("/api/reservations/R2/release/")
    assert response.status_code == 200 and response.json()["lines"][0]["status"] == "released"
    assert StockItem.objects.get(product=products["b"]).quantity_reserved == 0
    assert staff_api.post("/api/reservations/unknown/release/").status_code == 404


def test_out_of_stock_is_409_naming_products_and_reserves_nothing(products, staff_api):
    body = {"reference": "R3", "lines": [{"product": products["a"].id, "quantity": 1},
                                         {"product": products["b"].id, "quantity": 5}]}
    response = staff_api.post("/api/reservations/", body, format="json")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "out_of_stock"
    assert error["details"]["products"] == [{"product": products["b"].id, "requested": 5, "available": 2}]
    assert not Reservation.objects.exists()
    assert StockItem.objects.get(product=products["a"]).quantity_reserved == 0


def test_malformed_and_invalid_reservation_requests_are_400(products, staff_api):
    bad_json = staff_api.post("/api/reservations/", data="{not json", content_type="application/json")
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "malformed_request"
    no_lines = staff_api.post("/api/reservations/", {"reference": "R", "lines": []}, format="json")
    assert no_lines.status_code == 400 and "lines" in no_lines.json()["error"]["details"]
    zero = staff_api.post("/api/reservations/", {"reference": "R", "lines": [{"product": products["a"].id,
                                                                              "quantity": 0}]}, format="json")
    assert zero.status_code == 400
    assert not Reservation.objects.exists()


def test_reservations_are_staff_only(products, customer_api):
    body = {"reference": "R", "lines": [{"product": products["a"].id, "quantity": 1}]}
    assert customer_api.post("/api/reservations/", body, format="json").status_code == 403
    assert APIClient().post("/api/reservations/", body, format="json").status_code in (401, 403)
    assert not Reservation.objects.exists()
