"""The catalog service's API: the monolith's contract (pagination, filters, errors) and staff-only owned writes."""

from __future__ import annotations

import pytest

from extracted.catalog.products.models import Category, Product
from strangler_sync.models import OutboxEvent

pytestmark = pytest.mark.django_db

PRODUCT_FIELDS = {
    "id", "sku", "slug", "name", "description", "price", "currency", "is_active", "images", "category",
    "category_slug", "created_at", "updated_at",
}  # fmt: skip


def _skus(response) -> list[str]:
    return [p["sku"] for p in response.json()["results"]]


def test_product_list_is_paginated_with_the_monolith_shape(api, catalog):
    assert len(api.get("/api/products/").json()["results"]) == 4  # default page size 20
    first = api.get("/api/products/?page_size=2")
    assert first.status_code == 200
    body = first.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 4  # the inactive product is hidden from non-staff
    assert body["previous"] is None
    assert body["next"] == "http://testserver/api/products/?page=2&page_size=2"
    assert set(body["results"][0]) == PRODUCT_FIELDS
    second = api.get(body["next"])
    assert second.json()["next"] is None
    assert _skus(first) + _skus(second) == ["BOOK-1", "BOOK-2", "BOOT-1", "TRAIL-1"]  # by name: A, At, H, T


def test_product_json_fields(api, catalog):
    product = api.get("/api/products/1/").json()
    assert product == {
        "id": 1, "sku": "TRAIL-1", "slug": "trail-1", "name": "Trail Runner", "description": "", "price": "89.90",
        "currency": "USD", "is_active": True, "images": ["https://img.example/TRAIL-1.png"], "category": 11,
        "category_slug": "running", "created_at": "2026-01-04T12:00:00Z", "updated_at": "2026-01-04T12:00:00Z",
    }  # fmt: skip


def test_page_size_is_bounded(api, catalog, settings):
    settings.CATALOG_SERVICE = {**settings.CATALOG_SERVICE, "API_MAX_PAGE_SIZE": 3}
    assert len(api.get("/api/products/?page_size=50").json()["results"]) == 3
    assert len(api.get("/api/products/?page_size=1").json()["results"]) == 1


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("category=shoes", ["BOOT-1", "TRAIL-1"]),  # includes the running subcategory
        ("category=running", ["TRAIL-1"]),
        ("min_price=45&max_price=100", ["BOOK-2", "TRAIL-1"]),
        ("q=RUN", ["BOOK-1", "TRAIL-1"]),  # description and name, case-insensitive
        ("q=book%20novel", ["BOOK-1"]),  # every term must match
        ("ordering=-price", ["BOOT-1", "TRAIL-1", "BOOK-2", "BOOK-1"]),
        ("ordering=newest", ["BOOK-2", "TRAIL-1", "BOOK-1", "BOOT-1"]),
        ("category=books&ordering=price", ["BOOK-1", "BOOK-2"]),
    ],
)
def test_product_filters(api, catalog, query, expected):
    response = api.get(f"/api/products/?{query}")
    assert response.status_code == 200, response.json()
    assert _skus(response) == expected


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("min_price=cheap", "min_price"),
        ("max_price=-1", "max_price"),
        ("ordering=colour", "ordering"),
        ("min_price=50&max_price=10", "min_price"),
    ],
)
def test_bad_filters_are_400_with_the_error_shape(api, catalog, query, field):
    response = api.get(f"/api/products/?{query}")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert field in error["details"]


def test_unknown_category_filter_is_404_with_the_error_shape(api, catalog):
    # well-formed but naming no category: as the monolith answers (the contract test compares them)
    response = api.get("/api/products/?category=no-such-category")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found" and "category" in error["details"]


def test_missing_and_inactive_products_are_404_json(api, catalog):
    for path in ("/api/products/999/", "/api/products/5/"):
        response = api.get(path)
        assert response.status_code == 404
        assert response.json() == {"error": {"code": "not_found", "message": "Product not found.", "details": {}}}


def test_staff_see_inactive_products(staff_api, catalog):
    assert staff_api.get("/api/products/5/").status_code == 200
    assert staff_api.get("/api/products/").json()["count"] == 5
    assert staff_api.get("/api/products/?is_active=false").json()["count"] == 1


def test_invalid_page_is_404(api, catalog):
    response = api.get("/api/products/?page=99")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_categories(api, catalog):
    body = api.get("/api/categories/").json()
    assert [c["slug"] for c in body["results"]] == ["books", "running", "shoes"]
    assert set(body["results"][0]) == {"id", "name", "slug", "parent", "description", "created_at", "updated_at"}
    assert api.get("/api/categories/11/").json()["parent"] == 10
    assert api.get("/api/categories/99/").status_code == 404


# -- writes -----------------------------------------------------------------------------------------------------------

NEW_PRODUCT = {"sku": "NEW-1", "name": "New Thing", "price": "10.00", "category": 20}


def test_anonymous_and_customer_writes_are_403(api, customer_api, catalog, catalog_owned):
    for client in (api, customer_api):
        response = client.post("/api/products/", NEW_PRODUCT, format="json")
        assert response.status_code == 403
        assert response.json()["error"]["code"] in {"not_authenticated", "permission_denied"}
        assert client.delete("/api/categories/20/").status_code == 403
    assert not Product.objects.filter(sku="NEW-1").exists()


def test_wrong_basic_password_or_token_is_refused(catalog, catalog_owned):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer not-the-token")
    response = client.post("/api/products/", NEW_PRODUCT, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "authentication_failed"


@pytest.mark.parametrize("client_name", ["staff_api", "token_api"])
def test_writes_are_409_not_owner_while_the_monolith_owns(request, catalog, client_name):
    client = request.getfixturevalue(client_name)
    attempts = [
        client.post("/api/products/", NEW_PRODUCT, format="json"),
        client.patch("/api/products/1/", {"price": "1.00"}, format="json"),
        client.delete("/api/products/2/"),
        client.post("/api/categories/", {"name": "Toys"}, format="json"),
        client.delete("/api/categories/20/"),
    ]
    for response in attempts:
        assert response.status_code == 409, response.json()
        error = response.json()["error"]
        assert error["code"] == "not_owner"
        assert error["details"]["owner"] == "monolith"
    assert str(Product.objects.get(id=1).price) == "89.90"
    assert Product.objects.count() == 5 and Category.objects.count() == 3
    assert not OutboxEvent.objects.exists()


def test_owned_create_update_delete_emit_events_in_the_same_transaction(token_api, catalog, catalog_owned):
    created = token_api.post("/api/products/", NEW_PRODUCT, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["category_slug"] == "books" and body["slug"] == "new-thing" and body["price"] == "10.00"
    product_id = body["id"]
    assert product_id > 5

    patched = token_api.patch(f"/api/products/{product_id}/", {"price": "12.00"}, format="json")
    assert patched.status_code == 200 and patched.json()["price"] == "12.00"
    assert token_api.delete(f"/api/products/{product_id}/").status_code == 204
    assert not Product.objects.filter(id=product_id).exists()

    events = list(OutboxEvent.objects.filter(aggregate_type="product").order_by("id"))
    assert [(e.event_type, e.version) for e in events] == [
        ("product.created", 1), ("product.updated", 2), ("product.deleted", 3)
    ]
    assert all(e.aggregate_id == str(product_id) and e.origin == "catalog" for e in events)
    assert events[0].payload["sku"] == "NEW-1" and events[0].payload["category_id"] == 20
    assert events[1].payload["price"] == "12.00"
    assert events[2].payload == {"id": product_id}


def test_owned_put_replaces_the_product(staff_api, catalog, catalog_owned):
    response = staff_api.put(
        "/api/products/1/", {"sku": "TRAIL-1", "name": "Trail Runner 2", "price": "99.00"}, format="json"
    )
    assert response.status_code == 200, response.json()
    product = Product.objects.get(id=1)
    assert product.name == "Trail Runner 2" and product.category_id is None and product.images == []
    assert product.updated_at > product.created_at


def test_owned_write_conflicts_and_validation(staff_api, catalog, catalog_owned):
    duplicate = staff_api.post("/api/products/", {**NEW_PRODUCT, "sku": "BOOK-1"}, format="json")
    assert duplicate.status_code == 409 and duplicate.json()["error"]["code"] == "conflict"
    invalid = staff_api.post("/api/products/", {**NEW_PRODUCT, "price": "-3"}, format="json")
    assert invalid.status_code == 400 and "price" in invalid.json()["error"]["details"]
    malformed = staff_api.generic("POST", "/api/products/", "{not json", content_type="application/json")
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "malformed_request"
    protected = staff_api.delete("/api/categories/10/")  # has a subcategory
    assert protected.status_code == 409
    assert not OutboxEvent.objects.exists()  # refused writes leave no event behind


def test_owned_category_delete_detaches_products_and_emits(staff_api, catalog, catalog_owned):
    assert staff_api.delete("/api/categories/20/").status_code == 204
    assert Product.objects.get(id=3).category_id is None
    event = OutboxEvent.objects.get(aggregate_type="category")
    assert (event.event_type, event.aggregate_id, event.payload) == ("category.deleted", "20", {"id": 20})


def test_owned_category_cannot_become_its_own_ancestor(staff_api, catalog, catalog_owned):
    response = staff_api.patch("/api/categories/10/", {"parent": 11}, format="json")
    assert response.status_code == 400
    assert "parent" in response.json()["error"]["details"]
