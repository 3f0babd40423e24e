"""Catalog test fixtures: a small category tree with products, and API clients by role."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.monolith.catalog.factories import make_category, make_product


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """PBKDF2's deliberate slowness would dominate these tests' run time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

@pytest.fixture
def tree(db):
    """home > kitchen > knives, and garden (a sibling root)."""
    home = make_category("Home", slug="home")
    kitchen = make_category("Kitchen", parent=home, slug="kitchen")
    knives = make_category("Knives", parent=kitchen, slug="knives")
    garden = make_category("Garden", slug="garden")
    return {"home": home, "kitchen": kitchen, "knives": knives, "garden": garden}


@pytest.fixture
def shelf(tree):
    """Five products across the tree (one inactive) with distinct names, prices and text."""
    return {
        "lamp": make_product("Desk Lamp", price="25.00", category=tree["home"], sku="LAMP-1",
                             description="A warm reading light", stock=5),
        "pan": make_product("Frying Pan", price="40.00", category=tree["kitchen"], sku="PAN-1",
                            description="Cast iron", stock=0),
        "knife": make_product("Chef Knife", price="89.90", category=tree["knives"], sku="KNF-8",
                              description="Carbon steel blade", stock=3),
        "hose": make_product("Garden Hose", price="12.50", category=tree["garden"], sku="HOSE-20", stock=9),
        "old": make_product("Old Lamp", price="5.00", category=tree["home"], sku="LAMP-0", is_active=False),
    }  # fmt: skip


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def customer(django_user_model):
    return django_user_model.objects.create_user(username="customer", password="pw-customer-1")


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(username="staff", password="pw-staff-1", is_staff=True)


@pytest.fixture
def customer_api(customer):
    client = APIClient()
    client.force_authenticate(customer)
    return client


@pytest.fixture
def staff_api(staff):
    client = APIClient()
    client.force_authenticate(staff)
    return client
