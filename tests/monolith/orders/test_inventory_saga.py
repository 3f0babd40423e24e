"""Checkout as a saga through the real inventory service (own process, own database) once it owns stock.

Verified in both databases: the monolith's (orders, payments, no local reservations) and the service's
(reservations, stock levels). Faults are real: a port nobody listens on (service down), and a proxy that
holds confirm/reserve requests past checkout's timeout and forwards them late (a stuck service).
"""

from __future__ import annotations

import time

import pytest
import requests
from rest_framework.test import APIClient

from monolith.inventory.models import Reservation
from monolith.orders.inventory_gateway import CALLS, inventory_breaker, inventory_breakers_reset
from monolith.orders.models import Order, Payment
from monolith.payments import fake
from strangler_sync.ownership import ownership_set
from tests.extracted.catalog import live
from tests.monolith.orders.inventory_live import TOKEN, InventoryService, StallingProxy
from tests.waiting import WAIT_TIMEOUT

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# Checkout's per-call limit in these tests (production default: 2 s): calls that are not stalled must fit in it on
# a busy shared CI box; each stalled call costs it once.
TIMEOUT = 5.0


@pytest.fixture(scope="module")
def ownership_file(tmp_path_factory):
    """The service's seed: it owns stock from its start (the monolith's side is flipped in its test database)."""
    path = tmp_path_factory.mktemp("ownership") / "ownership.json"
    path.write_text('{"owners": {"stock": "inventory"}}')
    return path


@pytest.fixture(scope="module")
def service(tmp_path_factory, ownership_file, django_db_blocker):
    with django_db_blocker.unblock():
        running = InventoryService(tmp_path_factory.mktemp("inventory"), ownership_file=ownership_file)
    yield running
    running.stop()


@pytest.fixture
def proxy(service):
    running = StallingProxy(service.url)
    yield running
    running.stop()


@pytest.fixture
def remote_stock(settings, ownership_file, service, proxy, products):
    """Stock owned by the inventory service (the flip), checkout pointed at it through the proxy."""
    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "OWNERSHIP_FILE": str(ownership_file),
                               "RELAY_TRIGGER": "none"}
    ownership_set(aggregate_type="stock", owner="monolith")  # the service's loader needs nothing from it
    service.load_from_monolith()
    ownership_set(aggregate_type="stock", owner="inventory")
    settings.INVENTORY_SERVICE = {"URL": proxy.url, "TOKEN": TOKEN, "TIMEOUT": TIMEOUT, "BREAKER_FAILURES": 3,
                                  "BREAKER_COOLDOWN": 0.5}
    inventory_breakers_reset()
    yield service
    inventory_breakers_reset()
    ownership_set(aggregate_type="stock", owner="monolith")


@pytest.fixture
def api(shopper, cart, address):
    client = APIClient()
    client.force_authenticate(shopper)
    return client


def _checkout(api, key="saga-1", card=fake.CARD_SUCCESS):
    return api.post("/api/orders/", {"card_number": card}, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_checkout_reserves_pays_and_confirms_through_the_service(api, proxy, products, remote_stock):
    lamp, pen = products["lamp"], products["pen"]
    response = _checkout(api)
    assert response.status_code == 201, response.json()
    order = Order.objects.get()
    assert order.status == Order.Status.PAID
    assert not Reservation.objects.exists()  # the monolith reserved nothing itself
    assert remote_stock.database.reservations(order.reference) == [
        (lamp.id, 2, "confirmed"), (pen.id, 1, "confirmed")]
    assert remote_stock.database.stock(lamp.id) == (3, 0) and remote_stock.database.stock(pen.id) == (0, 0)
    # a replay with the same key is the same order, and touches the service no more
    assert [(method, path.split("/")[-2]) for method, path, _ in proxy.seen] == [
        ("POST", "reservations"), ("POST", "confirm")]
    assert _checkout(api).json()["reference"] == order.reference
    assert Order.objects.count() == 1 and len(proxy.seen) == 2


def test_service_down_answers_503_and_writes_nothing(api, settings, products, remote_stock):
    settings.INVENTORY_SERVICE = {**settings.INVENTORY_SERVICE, "URL": f"http://127.0.0.1:{live.free_port()}"}
    reservations_before = remote_stock.database.reservation_count()  # the service outlives single tests
    started = time.monotonic()
    response = _checkout(api)
    assert time.monotonic() - started < 5
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "inventory_unavailable"
    assert not Order.objects.exists() and not Payment.objects.exists()
    assert not Reservation.objects.exists()
    assert remote_stock.database.reservation_count() == reservations_before
    assert remote_stock.database.stock(products["lamp"].id) == (5, 0)
    assert api.get("/api/cart/").json()["lines"]  # the cart is kept for a retry


def test_a_retry_after_the_outage_succeeds_once(api, settings, products, remote_stock):
    working = settings.INVENTORY_SERVICE["URL"]
    settings.INVENTORY_SERVICE = {**settings.INVENTORY_SERVICE, "URL": f"http://127.0.0.1:{live.free_port()}"}
    assert _checkout(api, key="retry-1").status_code == 503
    settings.INVENTORY_SERVICE = {**settings.INVENTORY_SERVICE, "URL": working}
    assert _checkout(api, key="retry-1").status_code == 201
    assert _checkout(api, key="retry-1").status_code == 201
    assert Order.objects.filter(status=Order.Status.PAID).count() == 1
    assert remote_stock.database.stock(products["lamp"].id) == (3, 0)


def test_confirm_timeout_cancels_releases_and_refunds_in_both_databases(api, proxy, products, remote_stock):
    lamp = products["lamp"]
    proxy.stalls["/confirm/"] = WAIT_TIMEOUT  # the service gets the confirm only after checkout gave up
    response = _checkout(api)
    proxy.release.set()
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "inventory_unavailable"
    order = Order.objects.get()
    assert response.json()["error"]["details"]["order"] == order.reference
    # the monolith: cancelled, the charge recorded and refunded, nothing reserved locally
    assert order.status == Order.Status.CANCELLED and order.failure_code == "inventory_unavailable"
    assert [(p.kind, p.status) for p in order.payments.order_by("id")] == [
        (Payment.Kind.CHARGE, Payment.Status.SUCCEEDED), (Payment.Kind.REFUND, Payment.Status.SUCCEEDED)]
    assert not Reservation.objects.exists()
    # the service: released by the compensation, and the late confirm refused when it finally arrived
    assert proxy.late_done.wait(WAIT_TIMEOUT)
    assert ("POST", f"/api/reservations/{order.reference}/confirm/", 409) in proxy.seen
    assert remote_stock.database.reservations(order.reference) == [
        (lamp.id, 2, "released"), (products["pen"].id, 1, "released")]
    assert remote_stock.database.stock(lamp.id) == (5, 0)
    # a retry with the same key answers the same failure, never a second charge
    assert _checkout(api).json()["error"]["code"] == "inventory_unavailable"
    assert Payment.objects.count() == 2


def test_slow_reserve_fails_fast_and_an_orphan_is_expired_by_the_service(api, proxy, products, remote_stock):
    proxy.stalls["/api/reservations/"] = WAIT_TIMEOUT
    started = time.monotonic()
    response = _checkout(api)
    elapsed = time.monotonic() - started
    proxy.release.set()
    assert response.status_code == 503 and response.json()["error"]["code"] == "inventory_unavailable"
    assert elapsed < 4 * TIMEOUT + 1  # the reserve and its compensation each gave up after TIMEOUT
    assert not Order.objects.exists() and not Payment.objects.exists()
    # the reserve reached the service late, after the compensation: the service's expiry releases it
    assert proxy.late_done.wait(WAIT_TIMEOUT)
    assert remote_stock.database.stock(products["lamp"].id) == (5, 2)
    assert "released 1 reservation(s)" in remote_stock.manage("inventory_expire_reservations", "--older-than", "0")
    assert remote_stock.database.stock(products["lamp"].id) == (5, 0)


def test_out_of_stock_in_the_service_is_409_for_people_and_discards_the_order(api, products, remote_stock):
    # the service's stock is what counts now: someone else takes the last pen there first
    taken = requests.post(f"{remote_stock.url}/api/reservations/", json={"reference": "OTHER-1", "lines": [
        {"product": products["pen"].id, "quantity": 1}]}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert taken.status_code == 201
    response = _checkout(api)
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "out_of_stock" and "Pen (only 0 left)" in error["message"]
    assert not Order.objects.exists() and not Payment.objects.exists()
    assert remote_stock.database.stock(products["lamp"].id) == (5, 0)


def test_payment_declined_releases_the_service_reservation(api, products, remote_stock):
    response = _checkout(api, card=fake.CARD_DECLINED)
    assert response.status_code == 402
    order = Order.objects.get()
    assert order.status == Order.Status.CANCELLED
    assert {status for *_, status in remote_stock.database.reservations(order.reference)} == {"released"}
    assert remote_stock.database.stock(products["lamp"].id) == (5, 0)


def test_cancelling_a_paid_order_returns_its_stock_to_the_service(api, products, remote_stock):
    reference = _checkout(api).json()["reference"]
    assert remote_stock.database.stock(products["lamp"].id) == (3, 0)
    response = api.post(f"/api/orders/{reference}/cancel/")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "cancelled"
    assert {status for *_, status in remote_stock.database.reservations(reference)} == {"returned"}
    assert remote_stock.database.stock(products["lamp"].id) == (5, 0)
    kinds = list(Payment.objects.order_by("id").values_list("kind", "status"))
    assert kinds == [("charge", "succeeded"), ("refund", "succeeded")]


def test_breaker_opens_fails_fast_then_probes_and_closes(api, proxy, settings, products, remote_stock):
    proxy.fail_all = True
    for n in range(3):
        assert _checkout(api, key=f"b-{n}").json()["error"]["code"] == "inventory_unavailable"
    assert inventory_breaker().state == "open"
    seen = len(proxy.seen)
    fast = CALLS.labels("reserve", "breaker_open")._value.get()
    response = _checkout(api, key="b-open")
    assert response.status_code == 503 and response.json()["error"]["details"]["reason"] == "breaker_open"
    assert len(proxy.seen) == seen  # the service was not asked at all
    assert CALLS.labels("reserve", "breaker_open")._value.get() == fast + 1
    proxy.fail_all = False
    time.sleep(0.6)  # the cooldown: the next call is the probe
    assert _checkout(api, key="b-probe").status_code == 201
    assert inventory_breaker().state == "closed"
    assert not Order.objects.exclude(status=Order.Status.PAID).exists()


def test_a_checkout_that_died_mid_payment_is_expired_and_its_service_reservation_released(
        shopper, address, products, remote_stock):
    from datetime import timedelta

    from monolith.orders.inventory_gateway import inventory_reserve
    from monolith.orders.services import order_expire_stale

    # what a process killed between "reserve" and "charge" leaves: a placed order, stock held in the service
    order = Order.objects.create(
        reference="ORD-STALE01", user=shopper, idempotency_key="stale-1", currency="USD", subtotal=25, total=25,
        ship_name=address.name, ship_line1=address.line1, ship_city=address.city,
        ship_postal_code=address.postal_code, ship_country=address.country)
    inventory_reserve(reference=order.reference, lines=[(products["lamp"].id, 1)])
    assert remote_stock.database.stock(products["lamp"].id) == (5, 1)
    Order.objects.filter(pk=order.pk).update(placed_at=order.placed_at - timedelta(hours=1))
    assert [o.reference for o in order_expire_stale(older_than=timedelta(minutes=15))] == ["ORD-STALE01"]
    order.refresh_from_db()
    assert (order.status, order.failure_code) == (Order.Status.CANCELLED, "payment_abandoned")
    assert list(order.payments.values_list("kind", "status")) == [("refund", "succeeded")]
    assert remote_stock.database.reservations(order.reference) == [(products["lamp"].id, 1, "released")]
    assert remote_stock.database.stock(products["lamp"].id) == (5, 0)


def test_the_checkout_page_shows_an_unreachable_inventory_as_a_form_error(client, shopper, cart, address, settings,
                                                                          remote_stock):
    import re

    settings.INVENTORY_SERVICE = {**settings.INVENTORY_SERVICE, "URL": f"http://127.0.0.1:{live.free_port()}"}
    client.force_login(shopper)
    page = client.get("/orders/checkout/").content.decode()
    form = {name: re.search(rf'name="{name}" value="([^"]*)"', page).group(1)
            for name in ("idempotency_key", "expected_total")}
    response = client.post("/orders/checkout/", {**form, "card_number": fake.CARD_SUCCESS, "address": address.id})
    assert response.status_code == 503
    assert "The inventory service is unavailable; please try again in a moment." in response.content.decode()
    assert not Order.objects.exists() and not Payment.objects.exists()
