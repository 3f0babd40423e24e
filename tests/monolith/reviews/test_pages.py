"""Review pages: post from the product page, edit and delete your own, others get 403."""

from __future__ import annotations

import pytest
from django.urls import reverse

from monolith.reviews.models import Review

pytestmark = pytest.mark.django_db


def test_post_review_from_product_page(client, product, alice):
    client.force_login(alice)
    response = client.post(reverse("reviews:create", args=[product.id]),
                           {"rating": "4", "title": "Solid", "body": "Keeps tea hot"}, follow=True)  # fmt: skip
    assert response.redirect_chain[-1][0] == reverse("catalog:product-detail", args=[product.slug]) + "#reviews"
    html = response.content.decode()
    assert "Thanks, your review is posted." in html and "Keeps tea hot" in html and "★ 4.00" in html
    again = client.post(reverse("reviews:create", args=[product.id]), {"rating": "1"}, follow=True)
    assert "already reviewed" in again.content.decode()
    assert Review.objects.count() == 1


def test_invalid_rating_shows_error(client, product, alice):
    client.force_login(alice)
    response = client.post(reverse("reviews:create", args=[product.id]), {"rating": "9"}, follow=True)
    assert "rating:" in response.content.decode()
    assert not Review.objects.exists()


def test_anonymous_is_sent_to_login(client, product):
    response = client.post(reverse("reviews:create", args=[product.id]), {"rating": "5"})
    assert response.status_code == 302
    assert not Review.objects.exists()


def test_edit_and_delete_own_review(client, product, alice, bob):
    review = Review.objects.create(product=product, user=alice, rating=2, title="Meh")
    client.force_login(bob)
    assert client.get(reverse("reviews:edit", args=[review.id])).status_code == 403
    assert client.post(reverse("reviews:delete", args=[review.id])).status_code == 403

    client.force_login(alice)
    page = client.get(reverse("reviews:edit", args=[review.id]))
    assert page.status_code == 200 and 'value="Meh"' in page.content.decode()
    client.post(reverse("reviews:edit", args=[review.id]), {"rating": "5", "title": "Love it", "body": ""})
    review.refresh_from_db()
    assert (review.rating, review.title) == (5, "Love it")
    assert "Delete the review" in client.get(reverse("reviews:delete", args=[review.id])).content.decode()
    response = client.post(reverse("reviews:delete", args=[review.id]))
    assert response.status_code == 302
    assert not Review.objects.exists()
