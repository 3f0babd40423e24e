"""The monolith's published schema says what the API answers (issue 11: it said array where the API paginated,
left 400/403/404 out, and was looser than the code about country, idempotency key and quantities)."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from monolith.accounts.services import address_create
from tests.monolith.accounts.conftest import ADDRESS

ERROR_REF = "#/components/schemas/Error"
PAGE_KEYS = {"count", "next", "previous", "results"}


@pytest.fixture(scope="module")
def schema(django_db_blocker) -> dict:
    with django_db_blocker.unblock():
        return Client().get("/api/schema/?format=json").json()


def _component(schema: dict, ref: str) -> dict:
    return schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]


@pytest.mark.parametrize("path", ["/api/addresses/", "/api/orders/", "/api/stock/"])
def test_lists_that_paginate_are_documented_as_pages(schema, path):
    body = schema["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert set(_component(schema, body["$ref"])["properties"]) == PAGE_KEYS


@pytest.mark.django_db
def test_addresses_answer_a_page(django_user_model):
    user = django_user_model.objects.create_user(username="pager")
    address_create(user=user, **ADDRESS)
    client = APIClient()
    client.force_authenticate(user)
    page = client.get("/api/addresses/").json()
    assert set(page) == PAGE_KEYS and page["count"] == 1 and page["results"][0]["country"] == ADDRESS["country"]


def test_every_operation_documents_its_errors_in_the_error_shape(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            expected = {"403"}
            if method in ("post", "put", "patch"):
                expected |= {"400", "404", "409", "415"}
            if method == "delete":
                expected |= {"409"}
            if "{" in path:
                expected |= {"404"}
            assert expected <= set(responses), (method, path, sorted(responses))
            for code in expected:
                assert responses[code]["content"]["application/json"]["schema"] == {"$ref": ERROR_REF}
    error = _component(schema, ERROR_REF)["properties"]["error"]
    assert set(_component(schema, error["$ref"])["required"]) == {"code", "message", "details"}


def test_constraints_are_as_strict_as_the_code(schema):
    components = schema["components"]["schemas"]
    assert components["AddressInputRequest"]["properties"]["country"]["pattern"] == "^[A-Za-z]{2}$"
    assert components["ShippingAddressRequest"]["properties"]["country"]["pattern"] == "^[A-Za-z]{2}$"
    key_pattern = "^[A-Za-z0-9._:-]{1,64}$"
    assert components["OrderPlaceInputRequest"]["properties"]["idempotency_key"]["pattern"] == key_pattern
    (header,) = [p for p in schema["paths"]["/api/orders/"]["post"]["parameters"] if p["in"] == "header"]
    assert header["name"] == "Idempotency-Key" and header["schema"]["pattern"] == key_pattern
    for name in ("CartItemAddInputRequest", "CartItemUpdateInputRequest"):
        quantity = components[name]["properties"]["quantity"]
        assert (quantity["type"], quantity["minimum"], quantity["maximum"]) == ("integer", 1, 99)
    product = components["CartItemAddInputRequest"]["properties"]["product"]
    assert (product["type"], product["minimum"], product["maximum"]) == ("integer", 1, 2**63 - 1)
    line = components["ReservationLineInputRequest"]["properties"]
    assert line["quantity"]["maximum"] == 2**31 - 1 and line["product"]["maximum"] == 2**63 - 1
    assert components["StockSetInputRequest"]["properties"]["quantity_on_hand"]["maximum"] == 2**31 - 1


def test_request_fields_are_as_strict_as_the_serializers(schema):
    """What schemathesis' positive-data check found the schema promising and the code refusing (issue 11)."""
    components = schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if "requestBody" in operation:  # forms cannot carry nested objects, lists or null
                assert set(operation["requestBody"]["content"]) == {"application/json"}, (method, path)
    address = components["AddressInputRequest"]["properties"]
    assert address["name"]["pattern"].startswith(r"^[^\u0000]*[^\u0000\u0009-\u000d")  # no NUL, not blank trimmed
    assert address["line2"]["pattern"] == r"^[^\u0000]*$" and "oneOf" not in address["line2"]
    product = components["ProductInputRequest"]["properties"]
    assert product["price"]["pattern"] == r"^[0-9]{1,10}(?:\.[0-9]{1,2})?$"  # a digit, no sign (minimum 0)
    assert product["slug"]["pattern"] == "^[a-z0-9]+(?:[-_][a-z0-9]+)*$"
    assert product["sku"]["pattern"].startswith("^[A-Za-z0-9]")
    assert product["images"]["items"]["pattern"].startswith("^(?:/")
    order = components["OrderPlaceInputRequest"]
    assert order["not"] == {"required": ["address", "shipping_address"]}
    assert "pattern" in order["properties"]["card_number"]
    assert components["ReservationInputRequest"]["properties"]["lines"]["minItems"] == 1
    update = components["CartItemUpdateInputRequest"]
    assert update["required"] == ["quantity"]  # PATCH validates the whole body
    assert schema["paths"]["/api/cart/items/{product_id}/"]["patch"]["requestBody"]["required"] is True
    assert "required" not in components["PatchedProductInputRequest"]  # partial=True PATCHes stay partial
    (stock_filter,) = [p for p in schema["paths"]["/api/stock/"]["get"]["parameters"] if p["name"] == "product"]
    assert stock_filter["schema"]["pattern"] == "^[1-9][0-9]{0,17}(?:,[1-9][0-9]{0,17}){0,499}$"
