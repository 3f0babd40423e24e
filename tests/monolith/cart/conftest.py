"""Cart test fixtures: products to put in carts."""

from __future__ import annotations

import pytest

from tests.monolith.catalog.factories import make_product


@pytest.fixture
def products(db):
    return {
        "mug": make_product("Mug", price="8.50", stock=20),
        "tea": make_product("Tea", price="4.25", stock=20),
        "gone": make_product("Discontinued", price="1.00", is_active=False),
    }


@pytest.fixture
def shopper(django_user_model):
    return django_user_model.objects.create_user(username="shopper", password="pw-Shopper-1")


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
