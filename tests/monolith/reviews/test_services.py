"""reviews.services and selectors: one review per user per product, rating bounds (also in the DB), the average."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from monolith.reviews import selectors, services
from monolith.reviews.models import Review
from servicekit.errors import Conflict, InvalidInput
from tests.monolith.catalog.factories import make_product

pytestmark = pytest.mark.django_db


def test_create_and_one_review_per_user_per_product(product, alice):
    review = services.review_create(product=product, user=alice, rating=4, title=" Nice ", body="Pours well")
    assert (review.pk is not None, review.title) == (True, "Nice")
    with pytest.raises(Conflict):
        services.review_create(product=product, user=alice, rating=2)
    assert Review.objects.filter(product=product).count() == 1


@pytest.mark.parametrize("rating", [0, 6, -1, True, "5", 4.5, None])
def test_rating_must_be_1_to_5(product, alice, rating):
    with pytest.raises(InvalidInput) as caught:
        services.review_create(product=product, user=alice, rating=rating)
    assert "rating" in caught.value.details
    assert not Review.objects.exists()


def test_database_enforces_rating_bounds_and_uniqueness(product, alice):
    with pytest.raises(IntegrityError), transaction.atomic():
        Review.objects.create(product=product, user=alice, rating=9)
    Review.objects.create(product=product, user=alice, rating=3)
    with pytest.raises(IntegrityError), transaction.atomic():
        Review.objects.create(product=product, user=alice, rating=4)


def test_inactive_products_cannot_be_reviewed(alice):
    hidden = make_product(is_active=False)
    with pytest.raises(Conflict):
        services.review_create(product=hidden, user=alice, rating=5)


def test_update_and_delete(product, alice):
    review = services.review_create(product=product, user=alice, rating=2)
    updated = services.review_update(review=review, data={"rating": 5, "body": "Grew on me"})
    assert (updated.rating, updated.body, updated.title) == (5, "Grew on me", "")
    with pytest.raises(InvalidInput):
        services.review_update(review=review, data={"rating": 0})
    with pytest.raises(InvalidInput):
        services.review_update(review=review, data={"product": 1})
    services.review_delete(review=review)
    assert not Review.objects.exists()


def test_rating_summary(product, alice, bob, django_user_model):
    assert selectors.product_rating_summary(product_id=product.id) == (None, 0)
    carol = django_user_model.objects.create_user(username="carol", password="x")
    dave = django_user_model.objects.create_user(username="dave", password="x")
    for user, rating in [(alice, 5), (bob, 4), (carol, 4), (dave, 4)]:
        services.review_create(product=product, user=user, rating=rating)
    services.review_create(product=make_product(), user=alice, rating=1)  # another product: not counted
    assert selectors.product_rating_summary(product_id=product.id) == (Decimal("4.25"), 4)
    three = make_product()
    for user, rating in [(alice, 5), (bob, 4), (carol, 4)]:
        services.review_create(product=three, user=user, rating=rating)
    assert selectors.product_rating_summary(product_id=three.id) == (Decimal("4.33"), 3)


def test_review_list_for_product_newest_first(product, alice, bob):
    first = services.review_create(product=product, user=alice, rating=3)
    second = services.review_create(product=product, user=bob, rating=4)
    assert list(selectors.review_list_for_product(product_id=product.id)) == [second, first]
