"""Schemathesis on the inventory service's published schema: no 5xx, every answer as documented
(tests/api_conformance.py), with the service owning stock so writes go through."""

from __future__ import annotations

import pytest

from tests.api_conformance import HYPOTHESIS_SETTINGS, check_case, load_schema, transaction_kept_open
from tests.extracted.inventory.conftest import SERVICE_TOKEN

schema = load_schema()


@pytest.fixture
def service_credentials(shelf, stock_owned):
    with transaction_kept_open():
        yield {"Authorization": f"Bearer {SERVICE_TOKEN}"}


@pytest.mark.slow
@schema.parametrize()
@HYPOTHESIS_SETTINGS
def test_api_conforms_to_its_schema(case, service_credentials):
    check_case(case, credentials=service_credentials)
