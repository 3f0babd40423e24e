"""Accounts pages: sign up, log in (the anonymous cart comes along), log out (POST), profile and addresses."""

from __future__ import annotations

import pytest

from monolith.accounts.models import Address
from monolith.cart.models import Cart
from tests.monolith.accounts.conftest import ADDRESS, PASSWORD

pytestmark = pytest.mark.django_db


def test_signup_logs_in_and_keeps_the_cart(client, products, django_user_model):
    client.post("/cart/add/", {"product_id": products["mug"].id, "quantity": "2"})
    response = client.post("/accounts/signup/", {
        "username": "newbie", "email": "n@example.com",
        "password1": "pw-Long-Enough-9", "password2": "pw-Long-Enough-9",
    })
    assert response.status_code == 302 and response["Location"] == "/accounts/profile/"
    user = django_user_model.objects.get(username="newbie")
    cart = Cart.objects.get(user=user)
    assert [(line.product_id, line.quantity) for line in cart.lines.all()] == [(products["mug"].id, 2)]
    assert Cart.objects.count() == 1


def test_signup_errors_are_shown(client, shopper):
    response = client.post("/accounts/signup/", {
        "username": "shopper", "email": "x", "password1": "a", "password2": "b",
    })
    assert response.status_code == 400
    page = response.content.decode()
    assert "A user with that username already exists." in page
    assert "Enter a valid email address." in page


def test_login_merges_the_session_cart_into_the_users_cart(client, products, shopper):
    from monolith.cart.services import cart_add_product, cart_get_or_create_for_user

    cart_add_product(cart=cart_get_or_create_for_user(user=shopper), product_id=products["mug"].id, quantity=1)
    client.post("/cart/add/", {"product_id": products["mug"].id, "quantity": "2"})
    client.post("/cart/add/", {"product_id": products["tea"].id, "quantity": "1"})
    response = client.post("/accounts/login/", {"username": "shopper", "password": PASSWORD, "next": "/cart/"})
    assert response.status_code == 302 and response["Location"] == "/cart/"
    cart = Cart.objects.get(user=shopper)
    assert {line.product_id: line.quantity for line in cart.lines.all()} == {
        products["mug"].id: 3, products["tea"].id: 1,
    }
    assert Cart.objects.count() == 1
    assert 'data-testid="cart-count">4<' in client.get("/cart/").content.decode()


def test_wrong_password_shows_an_error(client, shopper):
    response = client.post("/accounts/login/", {"username": "shopper", "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


def test_logout_is_post_only(client, shopper):
    client.force_login(shopper)
    assert client.get("/accounts/logout/").status_code == 405
    client.post("/accounts/logout/")
    assert client.get("/accounts/profile/").status_code == 302


def test_profile_requires_login(client):
    response = client.get("/accounts/profile/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_profile_adds_defaults_and_removes_addresses(client, shopper):
    client.force_login(shopper)
    assert client.post("/accounts/profile/", ADDRESS).status_code == 302
    client.post("/accounts/profile/", {**ADDRESS, "line1": "2 Side St"})
    first, second = Address.objects.order_by("id")
    assert first.is_default
    client.post(f"/accounts/addresses/{second.id}/default/")
    assert Address.objects.get(is_default=True) == second
    client.post(f"/accounts/addresses/{first.id}/delete/")
    page = client.get("/accounts/profile/").content.decode()
    assert "2 Side St" in page and "1 Main St" not in page


def test_profile_form_errors(client, shopper):
    client.force_login(shopper)
    response = client.post("/accounts/profile/", {**ADDRESS, "country": "gbr"})
    assert response.status_code == 400
    assert "Ensure this value has at most 2 characters (it has 3)." in response.content.decode()
    response = client.post("/accounts/profile/", {**ADDRESS, "country": "g1"})
    assert "Use a two-letter ISO country code, e.g. US." in response.content.decode()
    assert not Address.objects.exists()
    assert client.post("/accounts/profile/", {**ADDRESS, "country": "gb"}).status_code == 302
    assert Address.objects.get().country == "GB"
