"""Review test fixtures: a product on sale, users, API clients."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.monolith.catalog.factories import make_product


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """PBKDF2's deliberate slowness would dominate these tests' run time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

@pytest.fixture
def product(db):
    return make_product("Teapot", price="20.00", stock=4)


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user(username="alice", password="pw-alice-1")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user(username="bob", password="pw-bob-1")


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(username="moderator", password="pw-mod-1", is_staff=True)


def _api(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def api():
    return _api()


@pytest.fixture
def alice_api(alice):
    return _api(alice)


@pytest.fixture
def bob_api(bob):
    return _api(bob)


@pytest.fixture
def staff_api(staff):
    return _api(staff)
