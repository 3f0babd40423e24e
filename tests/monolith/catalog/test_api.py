"""Catalog JSON API: the resource contract, filters, pagination, errors as {"error": {...}}, staff-only writes."""

from __future__ import annotations

import pytest

from monolith.catalog.models import Category, Product

pytestmark = pytest.mark.django_db

PRODUCT_FIELDS = {
    "id", "sku", "slug", "name", "description", "price", "currency", "is_active", "images",
    "category", "category_slug", "created_at", "updated_at",
}  # fmt: skip


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    return body["error"]


def test_product_list_contract(api, shelf):
    response = api.get("/api/products/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 4
    knife = body["results"][0]
    assert set(knife) == PRODUCT_FIELDS
    assert knife["sku"] == "KNF-8"
    assert knife["price"] == "89.90"
    assert knife["currency"] == "USD"
    assert knife["category"] == shelf["knife"].category_id
    assert knife["category_slug"] == "knives"
    assert knife["images"] == []


def test_product_without_category_has_nulls(api, staff_api):
    created = staff_api.post("/api/products/", {"sku": "LOOSE-1", "name": "Loose", "price": "3.00"}, format="json")
    body = api.get(f"/api/products/{created.json()['id']}/").json()
    assert (body["category"], body["category_slug"]) == (None, None)


def test_product_list_filters_and_ordering(api, shelf):
    response = api.get("/api/products/", {"category": "home", "min_price": "30", "ordering": "-price"})
    assert [p["sku"] for p in response.json()["results"]] == ["KNF-8", "PAN-1"]
    response = api.get("/api/products/", {"q": "lamp"})
    assert [p["sku"] for p in response.json()["results"]] == ["LAMP-1"]


def test_pagination(api, shelf):
    first = api.get("/api/products/", {"page_size": 3}).json()
    assert (first["count"], len(first["results"]), first["previous"]) == (4, 3, None)
    second = api.get(first["next"]).json()
    assert [p["sku"] for p in second["results"]] == ["HOSE-20"]
    assert second["next"] is None
    assert_error(api.get("/api/products/", {"page": 99}), 404, "not_found")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"min_price": "abc"}, "min_price"),
        ({"max_price": "-5"}, "max_price"),
        ({"ordering": "random"}, "ordering"),
        ({"min_price": "50", "max_price": "10"}, "min_price"),
    ],
)
def test_bad_filters_are_400_json(api, shelf, params, field):
    error = assert_error(api.get("/api/products/", params), 400, "invalid")
    assert field in error["details"]


def test_unknown_category_filter_is_404_json(api, shelf):
    # well-formed (the schema's slug pattern) but naming no category: as an unknown id in a path
    error = assert_error(api.get("/api/products/", {"category": "no-such-category"}), 404, "not_found")
    assert "category" in error["details"]


def test_inactive_products_are_hidden_from_customers_but_not_staff(api, staff_api, shelf):
    old = shelf["old"]
    assert_error(api.get(f"/api/products/{old.id}/"), 404, "not_found")
    assert api.get("/api/products/", {"is_active": "false"}).json()["count"] == 4  # ignored for non-staff
    assert staff_api.get(f"/api/products/{old.id}/").json()["is_active"] is False
    assert staff_api.get("/api/products/", {"is_active": "false"}).json()["count"] == 1
    assert staff_api.get("/api/products/").json()["count"] == 5


def test_product_detail_and_missing(api, shelf):
    body = api.get(f"/api/products/{shelf['lamp'].id}/").json()
    assert (body["sku"], body["price"], body["slug"]) == ("LAMP-1", "25.00", "desk-lamp")
    assert_error(api.get("/api/products/999999/"), 404, "not_found")


@pytest.mark.parametrize("client_name", ["api", "customer_api"])
def test_writes_are_staff_only(request, shelf, client_name):
    client = request.getfixturevalue(client_name)
    lamp = shelf["lamp"]
    assert_error(client.post("/api/products/", {"sku": "X-1", "name": "X", "price": "1.00"}, format="json"),
                 403, "not_authenticated" if client_name == "api" else "permission_denied")  # fmt: skip
    assert client.patch(f"/api/products/{lamp.id}/", {"price": "1.00"}, format="json").status_code == 403
    assert client.delete(f"/api/products/{lamp.id}/").status_code == 403
    assert client.post("/api/categories/", {"name": "Nope"}, format="json").status_code == 403
    assert Product.objects.get(pk=lamp.pk).price == lamp.price
    assert not Category.objects.filter(name="Nope").exists()


def test_staff_create_update_delete_product(staff_api, tree):
    created = staff_api.post(
        "/api/products/",
        {"sku": "NEW-1", "name": "New Thing", "price": "12.5", "category": tree["kitchen"].id,
         "images": ["https://img.example.com/new.png"]},
        format="json",
    )  # fmt: skip
    assert created.status_code == 201, created.content
    body = created.json()
    assert set(body) == PRODUCT_FIELDS
    assert (body["price"], body["slug"], body["category_slug"]) == ("12.50", "new-thing", "kitchen")

    patched = staff_api.patch(f"/api/products/{body['id']}/", {"price": "11.00"}, format="json")
    assert patched.status_code == 200
    assert (patched.json()["price"], patched.json()["name"], patched.json()["category"]) == (
        "11.00", "New Thing", tree["kitchen"].id,
    )  # fmt: skip

    put = staff_api.put(f"/api/products/{body['id']}/", {"sku": "NEW-1", "name": "Renamed", "price": "9.99"},
                        format="json")  # fmt: skip
    assert put.status_code == 200
    assert (put.json()["name"], put.json()["category"], put.json()["images"]) == ("Renamed", None, [])

    assert staff_api.delete(f"/api/products/{body['id']}/").status_code == 204
    assert not Product.objects.filter(pk=body["id"]).exists()


def test_staff_write_errors(staff_api, shelf):
    assert_error(staff_api.post("/api/products/", {"sku": "LAMP-1", "name": "Dup", "price": "1.00"}, format="json"),
                 409, "conflict")  # fmt: skip
    error = assert_error(staff_api.post("/api/products/", {"name": "No sku", "price": "-1"}, format="json"),
                         400, "invalid")  # fmt: skip
    assert {"sku", "price"} <= set(error["details"])
    error = assert_error(
        staff_api.patch(f"/api/products/{shelf['lamp'].id}/", {"images": ["ftp://x"]}, format="json"), 400, "invalid"
    )
    assert "images" in error["details"]


def test_malformed_json_is_400(staff_api):
    response = staff_api.generic("POST", "/api/products/", '{"sku": "BROKEN', content_type="application/json")
    assert_error(response, 400, "malformed_request")


def test_categories_api(api, staff_api, tree):
    listed = api.get("/api/categories/").json()
    assert listed["count"] == 4
    assert set(listed["results"][0]) == {"id", "name", "slug", "parent", "description", "created_at", "updated_at"}
    knives = api.get(f"/api/categories/{tree['knives'].id}/").json()
    assert (knives["slug"], knives["parent"]) == ("knives", tree["kitchen"].id)
    assert_error(api.get("/api/categories/424242/"), 404, "not_found")

    created = staff_api.post("/api/categories/", {"name": "Forks", "parent": tree["kitchen"].id}, format="json")
    assert created.status_code == 201
    assert created.json()["slug"] == "forks"
    renamed = staff_api.patch(f"/api/categories/{created.json()['id']}/", {"name": "Cutlery"}, format="json")
    assert (renamed.json()["name"], renamed.json()["parent"]) == ("Cutlery", tree["kitchen"].id)
    assert_error(staff_api.delete(f"/api/categories/{tree['home'].id}/"), 409, "conflict")
    assert staff_api.delete(f"/api/categories/{created.json()['id']}/").status_code == 204
