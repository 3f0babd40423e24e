"""Schemathesis on the reviews service's published schema: no 5xx, every answer as documented
(tests/api_conformance.py), with the service owning reviews so writes go through.

Who a customer is, the proxy resolves at the edge and forwards as a signed identity (servicekit.identity): the
authenticated calls carry the identity the monolith's endpoint would sign for one of its staff users (Basic,
so no CSRF pair is needed).
"""

from __future__ import annotations

import pytest

from tests.api_conformance import HYPOTHESIS_SETTINGS, check_case, load_schema, transaction_kept_open
from tests.identity import identity_token

schema = load_schema()


@pytest.fixture
def staff_credentials(shelf, reviews_owned):
    token = identity_token(audience="reviews", user_id=1, username="conformance", is_staff=True, lifetime=3600)
    with transaction_kept_open():
        yield {"X-Strangler-Identity": token}


@pytest.mark.slow
@schema.parametrize()
@HYPOTHESIS_SETTINGS
def test_api_conforms_to_its_schema(case, staff_credentials):
    check_case(case, credentials=staff_credentials)
