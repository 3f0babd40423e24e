"""Fixtures of the catalog service suite (run with --ds=extracted.catalog.settings, see dev.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from extracted.catalog.products.bootstrap import id_sequences_advance
from extracted.catalog.products.models import Category, Product
from strangler_sync.ownership import ownership_set
from tests.identity import identity_meta

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SERVICE_TOKEN = "test-service-token-0123456789"


@pytest.fixture(autouse=True)
def sync_config(settings, tmp_path):
    """A private ownership file (the monolith owns everything until a test flips it); no relay trigger."""
    settings.STRANGLER_SYNC = {
        **settings.STRANGLER_SYNC,
        "OWNERSHIP_FILE": str(tmp_path / "ownership.json"),
        "RELAY_TRIGGER": "none",
    }
    settings.CATALOG_SERVICE = {**settings.CATALOG_SERVICE, "API_TOKENS": [SERVICE_TOKEN]}
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast staff users
    return settings.STRANGLER_SYNC


@pytest.fixture
def catalog_owned(sync_config, db):
    """This service owns product and category writes, flipped the way the runbook does it.

    Ask for it after fixtures that insert rows with the monolith's ids (e.g. `catalog`): on PostgreSQL
    the id sequences only move above those ids here.
    """
    id_sequences_advance()
    ownership_set(aggregate_type="product", owner="catalog")
    ownership_set(aggregate_type="category", owner="catalog")


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def staff_api(db):
    """A staff user of the monolith, as the proxy forwards it: a signed identity (servicekit.identity)."""
    client = APIClient()
    client.credentials(**identity_meta(audience="catalog", user_id=7, username="staff", is_staff=True))
    return client


@pytest.fixture
def customer_api(db):
    client = APIClient()
    client.credentials(**identity_meta(audience="catalog", user_id=8, username="customer"))
    return client


@pytest.fixture
def token_api():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {SERVICE_TOKEN}")
    return client


def make_category(*, id: int, slug: str, name: str | None = None, parent: Category | None = None) -> Category:
    return Category.objects.create(
        id=id, slug=slug, name=name or slug.title(), parent=parent, created_at=T0, updated_at=T0
    )


def make_product(*, id: int, sku: str, price: str, name: str | None = None, category: Category | None = None,
                 is_active: bool = True, description: str = "", age_days: int = 0) -> Product:
    when = T0 + timedelta(days=age_days)
    return Product.objects.create(
        id=id, sku=sku, slug=sku.lower(), name=name or sku, price=Decimal(price), category=category,
        is_active=is_active, description=description, images=[f"https://img.example/{sku}.png"],
        created_at=when, updated_at=when,
    )


@pytest.fixture
def catalog(db):
    """A small tree: shoes > running; books. Five products, one inactive."""
    shoes = make_category(id=10, slug="shoes")
    running = make_category(id=11, slug="running", parent=shoes)
    books = make_category(id=20, slug="books")
    products = {
        "trail": make_product(id=1, sku="TRAIL-1", name="Trail Runner", price="89.90", category=running, age_days=3),
        "boot": make_product(id=2, sku="BOOT-1", name="Hiking Boot", price="129.00", category=shoes, age_days=1),
        "novel": make_product(id=3, sku="BOOK-1", name="A Novel", price="12.50", category=books,
                              description="A long story about running shoes", age_days=2),
        "atlas": make_product(id=4, sku="BOOK-2", name="Atlas", price="45.00", category=books, age_days=4),
        "hidden": make_product(id=5, sku="OLD-1", name="Old Sandal", price="5.00", category=shoes, is_active=False),
    }
    return {"shoes": shoes, "running": running, "books": books, **products}
