"""Schemathesis on the monolith's published schema: no 5xx, every answer as documented (tests/api_conformance.py)."""

from __future__ import annotations

import copy

import pytest
import schemathesis
from hypothesis import given
from schemathesis.core.failures import FailureGroup

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


def _deliberately_wrong(mutate) -> schemathesis.schemas.BaseSchema:
    """The monolith's published schema with one lie in it, served by the real app."""
    from django.core.wsgi import get_wsgi_application

    document = copy.deepcopy(schema.raw_schema)
    mutate(document)
    wrong = schemathesis.openapi.from_dict(document)
    wrong.app = get_wsgi_application()
    return wrong


def _paginated_stock_called_an_array(document: dict) -> None:
    document["paths"]["/api/stock/"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] = {
        "type": "array"
    }


def _product_404_left_out(document: dict) -> None:
    del document["paths"]["/api/products/{product_id}/"]["get"]["responses"]["404"]


def _cart_quantity_looser_than_the_code(document: dict) -> None:
    document["components"]["schemas"]["CartItemAddInputRequest"]["properties"]["quantity"]["maximum"] = 10_000


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mutate", "path", "method", "failure"),
    [
        (_paginated_stock_called_an_array, "/api/stock/", "GET", "Response violates schema"),
        (_product_404_left_out, "/api/products/{product_id}/", "GET", "Undocumented status code"),
        (_cart_quantity_looser_than_the_code, "/api/cart/items/", "POST", "Schema-valid request rejected"),
    ],
    ids=["paginated-list-called-array", "undocumented-404", "constraint-looser-than-code"],
)
def test_the_check_fails_on_a_deliberately_wrong_schema(mutate, path, method, failure, staff_credentials):
    """The conformance test above can fail: each lie issue 11 found, put back into the schema, is caught with the
    same settings and checks."""
    operation = _deliberately_wrong(mutate)[path][method]

    @HYPOTHESIS_SETTINGS
    @given(case=operation.as_strategy())
    def run(case):
        check_case(case, credentials=staff_credentials)

    with pytest.raises(FailureGroup) as caught:
        run()
    found = caught.value.exceptions
    assert failure in {each.title for each in found}, [str(each) for each in found]
