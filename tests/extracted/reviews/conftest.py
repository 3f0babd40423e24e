"""Fixtures of the reviews service suite (run with --ds=extracted.reviews.settings, see dev.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rest_framework.test import APIClient

from extracted.reviews.ratings.bootstrap import review_id_sequence_advance
from extracted.reviews.ratings.models import Product, Review
from servicekit.identity.authentication import IdentityUser
from strangler_sync.ownership import ownership_set

T0 = datetime(2026, 2, 1, 10, 0, tzinfo=UTC)
ALICE = IdentityUser(id=11, username="alice")
BOB = IdentityUser(id=12, username="bob")
STAFF = IdentityUser(id=1, username="admin", is_staff=True)


@pytest.fixture(autouse=True)
def sync_config(settings, tmp_path):
    """A private ownership file (the monolith owns reviews until a test flips it); no relay trigger."""
    settings.STRANGLER_SYNC = {
        **settings.STRANGLER_SYNC,
        "OWNERSHIP_FILE": str(tmp_path / "ownership.json"),
        "RELAY_TRIGGER": "none",
    }
    return settings.STRANGLER_SYNC


@pytest.fixture
def reviews_owned(sync_config, db):
    """This service owns review writes, flipped the way the runbook does it (ask for it after `shelf`:
    on PostgreSQL the id sequence only moves above the synced ids here)."""
    review_id_sequence_advance()
    ownership_set(aggregate_type="review", owner="reviews")


def client_for(user: IdentityUser | None) -> APIClient:
    """API clients acting as a monolith user (who they are is the authentication class's job, tested live)."""
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def shelf(db):
    """Products 1 (on sale, two reviews), 2 (on sale, none), 3 (not on sale, one review)."""
    for pid, active in ((1, True), (2, True), (3, False)):
        Product.objects.create(id=pid, is_active=active)
    make_review(id=100, product_id=1, user=BOB, rating=4, minutes=1)
    make_review(id=101, product_id=1, user=STAFF, rating=5, minutes=2)
    make_review(id=102, product_id=3, user=BOB, rating=1, minutes=3)


def make_review(*, id: int, product_id: int, user: IdentityUser, rating: int, minutes: int = 0) -> Review:
    when = T0 + timedelta(minutes=minutes)
    return Review.objects.create(id=id, product_id=product_id, user_id=user.id, username=user.username,
                                 rating=rating, title=f"t{id}", body="", created_at=when, updated_at=when)
