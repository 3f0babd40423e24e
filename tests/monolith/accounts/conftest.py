"""Accounts test fixtures."""

from __future__ import annotations

import pytest

from tests.monolith.catalog.factories import make_product

PASSWORD = "pw-Correct-Horse-7"


@pytest.fixture
def shopper(django_user_model):
    return django_user_model.objects.create_user(username="shopper", email="s@example.com", password=PASSWORD)


@pytest.fixture
def products(db):
    return {"mug": make_product("Mug", price="8.50", stock=20), "tea": make_product("Tea", price="4.25", stock=20)}


ADDRESS = {"name": "Ada Lovelace", "line1": "1 Main St", "city": "London", "postal_code": "N1 9GU", "country": "GB"}


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
