"""Admin: order status actions go through orders.services (illegal ones are reported, not applied)."""

from __future__ import annotations

import pytest

from monolith.inventory.models import StockItem
from monolith.orders.models import Order

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser(username="boss", password="x", email="b@x.io"))
    return client


def _action(admin_client, action, orders):
    return admin_client.post(
        "/admin/orders/order/",
        {"action": action, "_selected_action": [o.pk for o in orders]},
        follow=True,
    )


def test_ship_then_deliver_and_refuse_illegal(admin_client, checkout):
    order = checkout()
    assert admin_client.get(f"/admin/orders/order/{order.pk}/change/").status_code == 200
    page = _action(admin_client, "order_delivered", [order]).content.decode()
    assert "it cannot become delivered" in page
    assert Order.objects.get().status == "paid"
    _action(admin_client, "order_shipped", [order])
    _action(admin_client, "order_delivered", [order])
    assert Order.objects.get().status == "delivered"


def test_stock_admin_edits_go_through_the_service(admin_client, products):
    item = StockItem.objects.get(product=products["lamp"])
    response = admin_client.post(f"/admin/inventory/stockitem/{item.pk}/change/",
                                 {"product": products["lamp"].pk, "quantity_on_hand": 12}, follow=True)
    assert response.status_code == 200
    assert StockItem.objects.get(pk=item.pk).quantity_on_hand == 12
    assert admin_client.get("/admin/inventory/reservation/").status_code == 200
    assert admin_client.get("/admin/cart/cart/").status_code == 200
    assert admin_client.get("/admin/accounts/address/").status_code == 200
