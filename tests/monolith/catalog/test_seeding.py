"""seed_storefront: same seed -> identical rows, usable accounts, --if-empty, refuses a non-empty catalog."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import CommandError, call_command

from monolith.catalog.models import Category, Product
from monolith.catalog.seeding import SEED_EPOCH, storefront_seed
from monolith.inventory.models import StockItem
from monolith.reviews.models import Review
from servicekit.errors import Conflict

pytestmark = pytest.mark.django_db


def snapshot() -> dict:
    """Every seeded row by natural key (ids are left out: sequences are not reset between runs)."""
    return {
        "categories": sorted(Category.objects.values_list("slug", "name", "parent__slug", "description", "created_at",
                                                          "updated_at")),  # fmt: skip
        "products": sorted(Product.objects.values_list("sku", "slug", "name", "description", "price", "currency",
                                                       "is_active", "images", "category__slug", "created_at",
                                                       "updated_at")),  # fmt: skip
        "stock": sorted(StockItem.objects.values_list("product__sku", "quantity_on_hand", "quantity_reserved",
                                                      "updated_at")),  # fmt: skip
        "users": sorted(get_user_model().objects.values_list("username", "email", "password", "is_staff",
                                                             "is_superuser", "date_joined")),  # fmt: skip
        "reviews": sorted(Review.objects.values_list("product__sku", "user__username", "rating", "title", "body",
                                                     "created_at", "updated_at")),  # fmt: skip
    }


def wipe() -> None:
    Review.objects.all().delete()
    StockItem.objects.all().delete()
    Product.objects.all().delete()
    Category.objects.filter(parent__isnull=False).delete()
    Category.objects.all().delete()
    get_user_model().objects.all().delete()


def test_same_seed_gives_identical_rows():
    first_result = storefront_seed(products=300, users=8, seed=7)
    first = snapshot()
    wipe()
    second_result = storefront_seed(products=300, users=8, seed=7)
    assert snapshot() == first
    assert (first_result.products, first_result.stock_items, first_result.users) == (300, 300, 8)
    assert second_result.reviews == first_result.reviews == len(first["reviews"]) > 0
    assert len(first["categories"]) == first_result.categories > 6  # a tree: roots and children
    wipe()
    storefront_seed(products=300, users=8, seed=8)
    assert snapshot()["products"] != first["products"]


def test_seeded_rows_are_complete_and_timestamps_fixed():
    storefront_seed(products=50, users=3, seed=1)
    product = Product.objects.get(sku="SKU-0000001")
    assert product.created_at == product.updated_at == SEED_EPOCH + timedelta(minutes=1)
    assert product.category.parent is not None and product.images and product.price > 0
    assert StockItem.objects.count() == Product.objects.count() == 50
    # the auto timestamps work again for ordinary writes afterwards
    assert Product._meta.get_field("created_at").auto_now_add and Product._meta.get_field("updated_at").auto_now
    assert Review.objects.filter(product__is_active=False).count() == 0
    assert Review.objects.values("product", "user").distinct().count() == Review.objects.count()


def test_seeded_accounts_can_log_in():
    storefront_seed(products=5, users=2, seed=3)
    assert authenticate(username="user2", password="password") is not None
    admin = authenticate(username="admin", password="admin")
    assert admin is not None and admin.is_superuser and admin.is_staff
    assert authenticate(username="user3", password="password") is None


def test_command_if_empty_and_refusal():
    out = StringIO()
    call_command("seed_storefront", "--products", "20", "--users", "2", "--seed", "5", "--no-progress", stdout=out)
    assert "20 products" in out.getvalue()
    before = snapshot()
    out = StringIO()
    call_command("seed_storefront", "--products", "20", "--users", "2", "--if-empty", stdout=out)
    assert "nothing to do" in out.getvalue()
    with pytest.raises(CommandError):
        call_command("seed_storefront", "--products", "20", "--users", "2", "--no-progress")
    with pytest.raises(Conflict):
        storefront_seed(products=1, users=0)
    assert snapshot() == before
