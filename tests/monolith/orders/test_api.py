"""Orders JSON API: checkout from the cart with Idempotency-Key, every failure as the one error shape."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from monolith.catalog.models import Product
from monolith.orders.models import Order
from monolith.payments import fake
from tests.monolith.orders.conftest import ADDRESS, assert_no_leaked_reservation, stock_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(shopper, cart, address):
    client = APIClient()
    client.force_authenticate(shopper)
    return client


def _checkout(api, key="k-1", **body):
    return api.post("/api/orders/", {"card_number": fake.CARD_SUCCESS, **body}, format="json",
                    HTTP_IDEMPOTENCY_KEY=key)


def test_checkout_returns_201_with_the_order(api, products):
    response = _checkout(api)
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "paid" and body["total"] == "52.50" and body["currency"] == "USD"
    assert body["shipping_address"] == {**ADDRESS, "line2": ""}
    assert [(line["name"], line["quantity"], line["unit_price"]) for line in body["lines"]] == [
        ("Desk Lamp", 2, "25.00"), ("Pen", 1, "2.50"),
    ]
    assert [(p["kind"], p["status"], p["card_last4"]) for p in body["payments"]] == [("charge", "succeeded", "4242")]
    assert api.get("/api/cart/").json()["lines"] == []


def test_double_submission_answers_the_same_order(api, products):
    first = _checkout(api)
    second = _checkout(api)
    assert second.status_code == 201 and second.json()["reference"] == first.json()["reference"]
    assert Order.objects.count() == 1
    assert stock_of(products["lamp"]) == (3, 0)


def test_key_may_come_in_the_body(api):
    response = api.post("/api/orders/", {"card_number": fake.CARD_SUCCESS, "idempotency_key": "body-key"},
                        format="json")
    assert response.status_code == 201
    assert Order.objects.get().idempotency_key == "body-key"


def test_missing_idempotency_key_is_400(api):
    response = api.post("/api/orders/", {"card_number": fake.CARD_SUCCESS}, format="json")
    assert response.status_code == 400 and "idempotency_key" in response.json()["error"]["details"]
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    ("card", "status", "code"),
    [(fake.CARD_DECLINED, 402, "payment_declined"), (fake.CARD_TIMEOUT, 504, "payment_timeout"),
     (fake.CARD_UNAVAILABLE, 503, "payment_unavailable"), ("4242424242424241", 400, "invalid_card")],
)
def test_payment_failures(api, products, card, status, code):
    response = _checkout(api, card_number=card)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    if status != 400:
        order = Order.objects.get()
        assert error["details"]["order"] == order.reference and order.status == "cancelled"
        assert api.get(f"/api/orders/{order.reference}/").json()["status"] == "cancelled"
    else:
        assert not Order.objects.exists()
    assert stock_of(products["lamp"]) == (5, 0)
    assert_no_leaked_reservation()


def test_out_of_stock_is_409(api, products):
    api.patch(f"/api/cart/items/{products['pen'].id}/", {"quantity": 3}, format="json")
    response = _checkout(api)
    assert response.status_code == 409 and response.json()["error"]["code"] == "out_of_stock"
    assert not Order.objects.exists()
    assert_no_leaked_reservation()


def test_price_change_is_409_with_new_prices(api, products):
    Product.objects.filter(pk=products["pen"].pk).update(price=Decimal("3.00"))
    response = _checkout(api, expected_total="52.50")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "price_changed" and error["details"]["total"] == "53.00"
    assert api.get("/api/cart/").json()["subtotal"] == "53.00"
    assert not Order.objects.exists()
    assert _checkout(api, key="k-2", expected_total="53.00").status_code == 201


def test_empty_cart_is_400(api):
    api.delete("/api/cart/items/{}/".format(Product.objects.get(name="Pen").id))
    api.delete("/api/cart/items/{}/".format(Product.objects.get(name="Desk Lamp").id))
    response = _checkout(api)
    assert response.status_code == 409 and response.json()["error"]["code"] == "cart_empty"


def test_malformed_json_is_400(api):
    response = api.post("/api/orders/", data="{oops", content_type="application/json", HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 400 and response.json()["error"]["code"] == "malformed_request"
    assert not Order.objects.exists()


def test_addresses_by_id_inline_or_default(api, shopper, django_user_model):
    from monolith.accounts.services import address_create

    other = address_create(user=django_user_model.objects.create_user(username="other"), **ADDRESS)
    assert _checkout(api, address=other.id).status_code == 404
    both = _checkout(api, address=other.id, shipping_address=ADDRESS)
    assert both.status_code == 400
    bad = _checkout(api, shipping_address={**ADDRESS, "country": "??"})
    assert bad.status_code == 400 and "country" in bad.json()["error"]["details"]
    inline = _checkout(api, shipping_address={**ADDRESS, "name": "Gift Recipient"})
    assert inline.status_code == 201 and inline.json()["shipping_address"]["name"] == "Gift Recipient"


def test_no_address_at_all_is_409(shopper, cart):
    # well-formed (the schema makes both address fields optional): the account's state, no default address, refuses it
    client = APIClient()
    client.force_authenticate(shopper)
    response = _checkout(client)
    assert response.status_code == 409 and "address" in response.json()["error"]["details"]


def test_history_detail_and_privacy(api, django_user_model):
    reference = _checkout(api).json()["reference"]
    listed = api.get("/api/orders/").json()
    assert listed["count"] == 1 and listed["results"][0]["reference"] == reference
    assert api.get(f"/api/orders/{reference}/").status_code == 200
    stranger = APIClient()
    stranger.force_authenticate(django_user_model.objects.create_user(username="stranger"))
    assert stranger.get(f"/api/orders/{reference}/").status_code == 404
    assert stranger.post(f"/api/orders/{reference}/cancel/").status_code == 404
    assert stranger.get("/api/orders/").json()["count"] == 0
    assert APIClient().get("/api/orders/").status_code in (401, 403)
    assert api.get("/api/orders/ORD-NOPE/").json()["error"]["code"] == "not_found"


def test_cancel(api, products):
    reference = _checkout(api).json()["reference"]
    cancelled = api.post(f"/api/orders/{reference}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert [p["kind"] for p in cancelled.json()["payments"]] == ["charge", "refund"]
    again = api.post(f"/api/orders/{reference}/cancel/")
    assert again.status_code == 409 and again.json()["error"]["code"] == "illegal_transition"
    assert stock_of(products["lamp"]) == (5, 0)


def test_anonymous_cannot_check_out(products):
    response = APIClient().post("/api/orders/", {"card_number": fake.CARD_SUCCESS}, format="json",
                                HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code in (401, 403)
    assert not Order.objects.exists()


def test_staff_ship_and_deliver(api, django_user_model):
    reference = _checkout(api).json()["reference"]
    assert api.post(f"/api/orders/{reference}/ship/").status_code == 403  # the customer is not staff
    staff = APIClient()
    staff.force_authenticate(django_user_model.objects.create_user(username="warehouse", is_staff=True))
    early = staff.post(f"/api/orders/{reference}/deliver/")
    assert early.status_code == 409 and early.json()["error"]["code"] == "illegal_transition"
    assert staff.post(f"/api/orders/{reference}/ship/").json()["status"] == "shipped"
    assert staff.post(f"/api/orders/{reference}/deliver/").json()["status"] == "delivered"
    assert staff.post(f"/api/orders/{reference}/ship/").status_code == 409
    assert api.get(f"/api/orders/{reference}/").json()["status"] == "delivered"
