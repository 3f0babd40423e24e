"""Fixtures of the inventory service suite (run with --ds=extracted.inventory.settings, see dev.py)."""

from __future__ import annotations

import base64

import pytest
from rest_framework.test import APIClient

from extracted.inventory.stock.models import Product, StockItem
from strangler_sync.ownership import ownership_set

SERVICE_TOKEN = "test-inventory-token-0123456789"


@pytest.fixture(autouse=True)
def sync_config(settings, tmp_path):
    """A private ownership file (the monolith owns stock until a test flips it); no relay trigger."""
    settings.STRANGLER_SYNC = {
        **settings.STRANGLER_SYNC,
        "OWNERSHIP_FILE": str(tmp_path / "ownership.json"),
        "RELAY_TRIGGER": "none",
    }
    settings.INVENTORY = {**settings.INVENTORY, "API_TOKENS": [SERVICE_TOKEN]}
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return settings.STRANGLER_SYNC


@pytest.fixture
def stock_owned(sync_config, db):
    """This service owns stock writes (the flip)."""
    ownership_set(aggregate_type="stock", owner="inventory")


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def token_api():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {SERVICE_TOKEN}")
    return client


@pytest.fixture
def staff_api(db, django_user_model):
    django_user_model.objects.create_user(username="staff", password="staff-pass", is_staff=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"staff:staff-pass").decode())
    return client


@pytest.fixture
def shelf(db):
    """Products 1..4 known; 1 has 10 on hand, 2 has 3, 3 has none yet, 4 has 5 with 5 reserved."""
    for pid in (1, 2, 3, 4):
        Product.objects.create(id=pid)
    StockItem.objects.create(product_id=1, quantity_on_hand=10)
    StockItem.objects.create(product_id=2, quantity_on_hand=3)
    StockItem.objects.create(product_id=4, quantity_on_hand=5, quantity_reserved=5)
