"""The reviews service's API: the monolith's rules and answers, owner-only writes, one event per change."""

from __future__ import annotations

import pytest

from extracted.reviews.ratings.models import Review
from strangler_sync.models import OutboxEvent
from tests.extracted.reviews.conftest import ALICE, BOB, STAFF, client_for

pytestmark = pytest.mark.django_db


def test_reads(shelf):
    api = client_for(None)
    listed = api.get("/api/reviews/?product=1").json()
    assert listed["count"] == 2 and [r["id"] for r in listed["results"]] == [101, 100]  # newest first
    first = api.get("/api/reviews/100/").json()
    assert {k: first[k] for k in ("id", "product", "user", "username", "rating")} == {
        "id": 100, "product": 1, "user": 12, "username": "bob", "rating": 4}
    assert api.get("/api/reviews/999/").json()["error"] == {"code": "not_found", "message": "Review not found.",
                                                            "details": {}}
    assert api.get("/api/products/1/rating/").json() == {"product": 1, "average": "4.50", "count": 2}
    assert api.get("/api/products/2/rating/").json() == {"product": 2, "average": None, "count": 0}
    assert api.get("/api/products/3/rating/").status_code == 404  # not on sale: hidden from customers
    assert client_for(STAFF).get("/api/products/3/rating/").json()["count"] == 1
    assert api.get("/api/reviews/?product=0").status_code == 400


def test_writes_are_refused_before_the_flip(shelf):
    response = client_for(ALICE).post("/api/reviews/", {"product": 2, "rating": 5}, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "not_owner"
    assert not OutboxEvent.objects.exists()


def test_create_update_delete_after_the_flip_emit_full_state(shelf, reviews_owned):
    alice = client_for(ALICE)
    created = alice.post("/api/reviews/", {"product": 2, "rating": 3, "title": " Fine "}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert (body["user"], body["username"], body["title"], body["rating"]) == (11, "alice", "Fine", 3)
    review_id = body["id"]
    assert review_id > 102  # ids are allocated here now, above the synced ones
    assert alice.patch(f"/api/reviews/{review_id}/", {"rating": 5}, format="json").json()["rating"] == 5
    assert client_for(None).get("/api/products/2/rating/").json() == {"product": 2, "average": "5.00", "count": 1}
    assert alice.delete(f"/api/reviews/{review_id}/").status_code == 204
    events = list(OutboxEvent.objects.order_by("id"))
    assert [(e.event_type, e.version, e.origin) for e in events] == [
        ("review.created", 1, "reviews"), ("review.updated", 2, "reviews"), ("review.deleted", 3, "reviews")]
    assert events[1].payload["username"] == "alice" and events[1].payload["rating"] == 5
    assert events[2].payload == {"id": review_id}


def test_the_monolith_rules_and_messages(shelf, reviews_owned):
    bob, alice = client_for(BOB), client_for(ALICE)
    twice = bob.post("/api/reviews/", {"product": 1, "rating": 2}, format="json")
    assert twice.status_code == 409
    assert twice.json()["error"]["message"] == "You have already reviewed this product; edit your review instead."
    hidden = alice.post("/api/reviews/", {"product": 3, "rating": 2}, format="json")
    assert hidden.status_code == 409
    assert hidden.json()["error"]["message"] == "This product is not on sale and cannot be reviewed."
    unknown = alice.post("/api/reviews/", {"product": 99, "rating": 2}, format="json").json()["error"]
    assert unknown["details"] == {"product": ['Invalid pk "99" - object does not exist.']}
    assert alice.post("/api/reviews/", {"product": 2, "rating": 6}, format="json").status_code == 400
    assert alice.patch("/api/reviews/100/", {"rating": 1}, format="json").status_code == 403  # bob's review
    assert client_for(STAFF).patch("/api/reviews/100/", {"rating": 1}, format="json").status_code == 200  # moderation
    assert client_for(None).post("/api/reviews/", {"product": 2, "rating": 2}, format="json").status_code == 403
    assert Review.objects.count() == 3


def test_the_id_sequence_moves_above_synced_ids(shelf, reviews_owned):
    from extracted.reviews.ratings.bootstrap import review_id_sequence_advance

    assert review_id_sequence_advance(headroom=50) >= 153
    created = client_for(ALICE).post("/api/reviews/", {"product": 2, "rating": 3}, format="json").json()
    assert created["id"] >= 153
