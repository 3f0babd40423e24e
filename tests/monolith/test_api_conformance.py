"""Schemathesis on the monolith's published schema: no 5xx, every answer as documented (tests/api_conformance.py)."""

from __future__ import annotations

import pytest

from tests.api_conformance import HYPOTHESIS_SETTINGS, basic_auth, check_case, load_schema, transaction_kept_open
from tests.monolith.catalog.factories import make_product

schema = load_schema()


@pytest.fixture
def staff_credentials(db, settings, django_user_model):
    """A staff user (who may do everything) and a few products with stock for the cases to find."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    django_user_model.objects.create_user(username="conformance", password="conformance-pass", is_staff=True)
    for index in range(3):
        make_product(f"Conformance {index}", price="4.00", stock=5)
    with transaction_kept_open():
        yield basic_auth("conformance", "conformance-pass")


@pytest.mark.slow
@schema.parametrize()
@HYPOTHESIS_SETTINGS
def test_api_conforms_to_its_schema(case, staff_credentials):
    check_case(case, credentials=staff_credentials)
