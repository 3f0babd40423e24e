"""Inventory test fixtures: products with stock, API clients by role."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.monolith.catalog.factories import make_product


@pytest.fixture
def products(db):
    """Three active products: a (10 on hand), b (2 on hand), c (no stock row at all)."""
    return {
        "a": make_product("Widget A", price="10.00", stock=10),
        "b": make_product("Widget B", price="5.00", stock=2),
        "c": make_product("Widget C", price="7.00"),
    }


@pytest.fixture
def staff_api(django_user_model):
    client = APIClient()
    client.force_authenticate(django_user_model.objects.create_user(username="stock-clerk", is_staff=True))
    return client


@pytest.fixture
def customer_api(django_user_model):
    client = APIClient()
    client.force_authenticate(django_user_model.objects.create_user(username="shopper"))
    return client


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
