"""Concurrent writes on PostgreSQL: racing duplicates end as one row and one Conflict, never a 500."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from monolith.catalog import services as catalog_services
from monolith.catalog.models import Product
from monolith.reviews import services
from monolith.reviews.models import Review
from servicekit.errors import Conflict
from tests.monolith.catalog.factories import make_product

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

RACERS = 4


def race(work) -> list[str]:
    """Run work() in RACERS threads released together; each reports 'ok' or 'conflict'."""
    barrier = threading.Barrier(RACERS)
    outcomes: list[str] = []
    lock = threading.Lock()

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            work(index)
            outcome = "ok"
        except Conflict:
            outcome = "conflict"
        except Exception as exc:  # anything else is a bug the test must show
            outcome = f"error: {type(exc).__name__}: {exc}"
        finally:
            connection.close()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return sorted(outcomes)


def test_racing_reviews_by_one_user_leave_one_review(django_user_model):
    product = make_product(stock=1)
    user = django_user_model.objects.create_user(username="racer", password="x")
    outcomes = race(lambda i: services.review_create(product=product, user=user, rating=1 + i))
    assert outcomes == ["conflict"] * (RACERS - 1) + ["ok"]
    assert Review.objects.filter(product=product, user=user).count() == 1


def test_racing_creates_with_one_sku_leave_one_product():
    outcomes = race(lambda i: catalog_services.product_create(sku="RACE-1", name=f"Racer {i}", price="1.00"))
    assert outcomes == ["conflict"] * (RACERS - 1) + ["ok"]
    assert Product.objects.filter(sku="RACE-1").count() == 1
