"""A shopper's path through the pages as a browser would take it: search, open a product, add it to the cart
with the page's own form, see the cart badge, review it."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def form_fields(html: str, form_class: str) -> tuple[str, dict[str, str]]:
    """The action and the named input values of the first <form class=form_class>."""
    match = re.search(rf'<form class="{form_class}" method="post" action="([^"]+)">(.*?)</form>', html, re.S)
    assert match, f"no {form_class} form on the page"
    fields = dict(re.findall(r'<input type="[^"]+" name="([^"]+)" value="([^"]*)"', match.group(2)))
    return unescape(match.group(1)), fields


def test_search_open_add_to_cart_and_review(shelf, django_user_model):
    client = Client(enforce_csrf_checks=True)  # the forms must carry their CSRF token, as in a browser
    results = client.get("/", {"q": "knife"}).content.decode()
    link = re.search(r'<a class="name" href="([^"]+)">Chef Knife</a>', results)
    assert link
    product_page = client.get(link.group(1)).content.decode()
    assert "89.90 USD" in product_page and "In stock: 3 available" in product_page

    action, fields = form_fields(product_page, "add-to-cart")
    assert set(fields) == {"csrfmiddlewaretoken", "product_id", "quantity"}
    fields["quantity"] = "2"
    cart_page = client.post(action, fields, follow=True)
    assert cart_page.status_code == 200
    cart_html = cart_page.content.decode()
    assert "Chef Knife" in cart_html
    assert re.search(r'<span class="badge" data-testid="cart-count">2</span>', cart_html)
    again = client.get(link.group(1)).content.decode()  # the badge is on every page of the layout
    assert '<span class="badge" data-testid="cart-count">2</span>' in again

    client.force_login(django_user_model.objects.create_user(username="shopper", password="pw-shopper-1"))
    product_page = client.get(link.group(1)).content.decode()
    review_action, review_fields = form_fields(product_page, "form-box")
    review = {**review_fields, "rating": "5", "title": "Sharp", "body": "Cuts well"}
    after = client.post(review_action, review, follow=True)
    html = after.content.decode()
    assert "★ 5.00" in html and "from 1 review" in html and "Cuts well" in html
