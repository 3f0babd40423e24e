"""Catalog pages: list (search, category, price, sort, pagination), detail (price, stock, cart form, reviews)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from monolith.reviews.models import Review

pytestmark = pytest.mark.django_db


def names_on_page(response) -> list[str]:
    return re.findall(r'<a class="name" href="[^"]+">([^<]+)</a>', response.content.decode())


def test_list_page_shows_active_products_in_base_layout(client, shelf):
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert names_on_page(response) == ["Chef Knife", "Desk Lamp", "Frying Pan", "Garden Hose"]
    assert "Old Lamp" not in html
    # the shared layout: nav, search box, stylesheet
    assert 'href="/static/storefront/site.css"' in html
    assert f'action="{reverse("catalog:product-list")}"' in html and 'name="q"' in html
    assert f'href="{reverse("cart:detail")}"' in html
    assert ">Garden</a>" in html  # category sidebar


def test_search_sort_and_price_filter(client, shelf):
    assert names_on_page(client.get("/", {"q": "lamp"})) == ["Desk Lamp"]
    assert names_on_page(client.get("/", {"ordering": "-price"})) == ["Chef Knife", "Frying Pan", "Desk Lamp",
                                                                       "Garden Hose"]  # fmt: skip
    assert names_on_page(client.get("/", {"min_price": "20", "max_price": "50", "ordering": "price"})) == [
        "Desk Lamp", "Frying Pan",
    ]  # fmt: skip


def test_category_page_includes_subcategories(client, shelf):
    response = client.get(reverse("catalog:category", args=["kitchen"]))
    assert response.status_code == 200
    assert names_on_page(response) == ["Chef Knife", "Frying Pan"]
    assert "<h1>Kitchen" in response.content.decode()
    assert client.get(reverse("catalog:category", args=["no-such"])).status_code == 404


def test_bad_filter_is_reported_not_fatal(client, shelf):
    response = client.get("/", {"min_price": "cheap", "q": "knife"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Ignored min_price" in html
    assert names_on_page(response) == ["Chef Knife"]


def test_contradictory_price_range_is_reported_and_ignored(client, shelf):
    response = client.get(reverse("catalog:category", args=["home"]), {"min_price": "50", "max_price": "10"})
    assert response.status_code == 200
    assert "min_price is above max_price." in response.content.decode()
    assert names_on_page(response) == ["Chef Knife", "Desk Lamp", "Frying Pan"]  # still within the category


def test_pagination_keeps_the_query(client, shelf, settings):
    settings.CATALOG = {"PAGE_SIZE": 2}
    first = client.get("/", {"q": "a"})  # every active product has an "a"
    assert names_on_page(first) == ["Chef Knife", "Desk Lamp"]
    html = first.content.decode()
    assert "Page 1 of 2" in html
    assert 'href="?q=a&amp;page=2"' in html
    assert names_on_page(client.get("/", {"q": "a", "page": 2})) == ["Frying Pan", "Garden Hose"]
    assert names_on_page(client.get("/", {"q": "a", "page": "junk"})) == ["Chef Knife", "Desk Lamp"]


def test_detail_page_shows_price_stock_and_cart_form(client, shelf):
    lamp = shelf["lamp"]
    response = client.get(reverse("catalog:product-detail", args=[lamp.slug]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "25.00 USD" in html
    assert "In stock: 5 available" in html
    form = re.search(r'<form class="add-to-cart" method="post" action="([^"]+)">(.*?)</form>', html, re.S)
    assert form is not None and form.group(1) == reverse("cart:add")
    assert f'name="product_id" value="{lamp.id}"' in form.group(2)
    assert 'name="quantity"' in form.group(2)
    assert "No reviews yet" in html
    assert "Log in" in html and "to write a review" in html


def test_out_of_stock_product_has_no_cart_form(client, shelf):
    html = client.get(reverse("catalog:product-detail", args=[shelf["pan"].slug])).content.decode()
    assert "Out of stock" in html
    assert 'class="add-to-cart"' not in html


def test_detail_page_shows_rating_reviews_and_review_form(client, shelf, django_user_model):
    knife = shelf["knife"]
    alice = django_user_model.objects.create_user(username="alice", password="pw-alice-1")
    bob = django_user_model.objects.create_user(username="bob", password="pw-bob-1")
    Review.objects.create(product=knife, user=alice, rating=5, title="Razor sharp", body="Cuts tomatoes.")
    Review.objects.create(product=knife, user=bob, rating=4, title="Good", body="")
    client.force_login(django_user_model.objects.create_user(username="carol", password="pw-carol-1"))
    html = client.get(reverse("catalog:product-detail", args=[knife.slug])).content.decode()
    assert "★ 4.50" in html and "from 2 reviews" in html
    assert "Razor sharp" in html and "Cuts tomatoes." in html
    assert f'action="{reverse("reviews:create", args=[knife.id])}"' in html
    client.force_login(alice)  # alice already reviewed: an edit link instead of the form
    html = client.get(reverse("catalog:product-detail", args=[knife.slug])).content.decode()
    assert reverse("reviews:edit", args=[knife.reviews.get(user=alice).id]) in html
    assert 'action="/reviews/product/' not in html


def test_inactive_product_page_is_404_for_customers_only(client, shelf, django_user_model):
    url = reverse("catalog:product-detail", args=[shelf["old"].slug])
    assert client.get(url).status_code == 404
    client.force_login(django_user_model.objects.create_user(username="boss", password="x", is_staff=True))
    assert "Not on sale" in client.get(url).content.decode()


def test_layout_nav_for_visitors_and_signed_in_users(client, shelf, django_user_model):
    html = client.get("/").content.decode()
    for name in ("catalog:product-list", "cart:detail", "orders:list", "accounts:signup"):
        assert f'href="{reverse(name)}"' in html, name
    assert f'href="{reverse("accounts:login")}?next=/"' in html
    assert reverse("accounts:profile") not in html

    client.force_login(django_user_model.objects.create_user(username="dora", password="pw-dora-1"))
    html = client.get("/").content.decode()
    assert f'href="{reverse("accounts:profile")}">Account (dora)</a>' in html
    logout = re.search(rf'<form method="post" action="{reverse("accounts:logout")}" class="inline">(.*?)</form>', html)
    assert logout and 'name="csrfmiddlewaretoken"' in logout.group(1)
    assert f'href="{reverse("accounts:login")}' not in html


def test_messages_are_shown_in_the_layout(client, shelf):
    assert '<li class="message error">' in client.get("/", {"ordering": "sideways"}).content.decode()
