"""Django admin for catalog and reviews: lists with search/filters, and writes that obey the services' rules."""

from __future__ import annotations

from decimal import Decimal

import pytest

from monolith.catalog.models import Category, Product
from monolith.reviews.models import Review

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser(username="root", password="x", email="r@x.test"))
    return client


def product_form(**overrides) -> dict:
    return {"sku": "ADM-1", "slug": "admin-made", "name": "Admin Made", "description": "", "price": "7.25",
            "currency": "USD", "is_active": "on", "images": "[]", "category": "", **overrides}  # fmt: skip


def test_product_changelist_search_and_filter(admin_client_, shelf):
    html = admin_client_.get("/admin/catalog/product/", {"q": "lamp"}).content.decode()
    assert "Desk Lamp" in html and "Old Lamp" in html and "Chef Knife" not in html
    html = admin_client_.get("/admin/catalog/product/", {"is_active__exact": "0"}).content.decode()
    assert "Old Lamp" in html and "Desk Lamp" not in html
    assert admin_client_.get("/admin/catalog/category/", {"q": "kitch"}).status_code == 200
    assert admin_client_.get(f"/admin/catalog/product/{shelf['lamp'].id}/change/").status_code == 200


def test_admin_creates_and_edits_products_through_the_services(admin_client_, tree):
    response = admin_client_.post("/admin/catalog/product/add/", product_form(category=str(tree["garden"].id)))
    assert response.status_code == 302, response.content.decode()[:2000]
    product = Product.objects.get(sku="ADM-1")
    assert (product.price, product.category, product.is_active) == (Decimal("7.25"), tree["garden"], True)

    response = admin_client_.post(f"/admin/catalog/product/{product.id}/change/",
                                  product_form(price="8.00", category=str(tree["garden"].id)))  # fmt: skip
    assert response.status_code == 302
    assert Product.objects.get(pk=product.pk).price == Decimal("8.00")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"currency": "usd"}, "three-letter"), ({"images": '["not-a-url"]'}, "is not an http(s) URL")],
)
def test_admin_shows_service_rules_as_form_errors(admin_client_, overrides, message):
    response = admin_client_.post("/admin/catalog/product/add/", product_form(**overrides))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Product.objects.exists()


def test_admin_refuses_category_cycles(admin_client_, tree):
    home = tree["home"]
    response = admin_client_.post(
        f"/admin/catalog/category/{home.id}/change/",
        {"name": "Home", "slug": "home", "parent": str(tree["knives"].id), "description": ""},
    )
    assert response.status_code == 200
    assert "cannot be its own ancestor" in response.content.decode()
    assert Category.objects.get(pk=home.pk).parent_id is None


def test_admin_deactivate_action(admin_client_, shelf):
    ids = [str(shelf["lamp"].id), str(shelf["pan"].id)]
    admin_client_.post("/admin/catalog/product/", {"action": "deactivate", "_selected_action": ids})
    assert set(Product.objects.filter(is_active=False).values_list("sku", flat=True)) == {"LAMP-0", "LAMP-1", "PAN-1"}


def test_review_moderation(admin_client_, shelf, django_user_model):
    author = django_user_model.objects.create_user(username="author", password="x")
    review = Review.objects.create(product=shelf["lamp"], user=author, rating=1, title="rude words")
    assert "rude words" in admin_client_.get("/admin/reviews/review/", {"q": "rude"}).content.decode()
    assert admin_client_.get("/admin/reviews/review/add/").status_code == 403
    response = admin_client_.post(f"/admin/reviews/review/{review.id}/change/",
                                  {"rating": "1", "title": "[removed]", "body": ""})  # fmt: skip
    assert response.status_code == 302
    assert Review.objects.get(pk=review.pk).title == "[removed]"
    admin_client_.post(f"/admin/reviews/review/{review.id}/delete/", {"post": "yes"})
    assert not Review.objects.exists()
